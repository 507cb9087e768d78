# GENERATED from src/sessionward/aio/stores/_redis_convert.py by scripts/gen_sync.py: edit that file, not this one.
"""Converting records of the Redis store's version-1 layout, record by record, to the compact one (what is read
is described in `sessionward.stores._redis_legacy`, shared by both flavours; this is the I/O, one source for the
async store and the sync one generated from it).

A record of that layout is converted when it is first looked up (by id, by secret, or for its user's list or
revocation) and by `purge_expired`: `LEGACY_TAKE` reads and deletes it atomically, then the new keys are written
with the time it had left.
"""

from __future__ import annotations

import contextlib
import math
from typing import TYPE_CHECKING

from sessionward.exceptions import CreateError
from sessionward.stores import _redis_record as fmt
from sessionward.stores._redis_legacy import parse_hash

if TYPE_CHECKING:
    from sessionward.stores.redis import RedisStore


def convert(store: RedisStore, u: str, m: str) -> bool:
    """Move one version-1 record (encoded user U, member m) to the current layout, keeping the time it had
    left. False if there was none (gone, or converted meanwhile by another process)."""
    p = store._p
    with store._errors():
        taken = store._lua_legacy_take(keys=[f"{p}{{u:{u}}}:s:{m}", f"{p}{{u:{u}}}:idx"], args=[m])
    if not taken:
        return False
    rec_ttl, record = int(taken[0]), parse_hash(taken[1:])
    end_ttl = rec_ttl + max(0, math.ceil((record.expires_at - record.live_until()) * 1000))
    now = record.live_until() - rec_ttl / 1000  # the time Redis and the record agree on
    with contextlib.suppress(CreateError):  # converted meanwhile by another instance
        store._write_new(record, fmt.pack(record), now=now, rec_ttl=rec_ttl, end_ttl=end_ttl)
    old_secret = f"{p}h:{_enc(record.secret_hash)}" if record.secret_hash else ""
    store._drop(f"{p}id:{m}", old_secret)
    return True


def convert_by_id(store: RedisStore, session_id: str) -> bool:
    u = store._read(lambda: store.client.get(f"{store._p}id:{_enc(session_id)}"))
    return u is not None and convert(store, _s(u), _enc(session_id))


def convert_by_secret(store: RedisStore, secret_hash: str) -> bool:
    v = store._read(lambda: store.client.get(f"{store._p}h:{_enc(secret_hash)}"))
    if v is None:
        return False
    u, _, m = _s(v).partition(" ")
    return convert(store, u, m)


def convert_user(store: RedisStore, u: str) -> None:
    old_idx = f"{store._p}{{u:{u}}}:idx"
    for m in store._read(lambda: store.client.zrange(old_idx, 0, -1)):
        convert(store, u, _s(m))


def _enc(value: str) -> str:
    from sessionward.stores.redis import _enc as enc

    return enc(value)


def _s(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
