# GENERATED from src/sessionward/aio/stores/_redis_scan.py by scripts/gen_sync.py: edit that file, not this one.
"""The Redis store's work over the whole key space (one source for both flavours; see `redis.py`): listing every
session and every denial, and the periodic purge. For the admin CLI, the local cache's (re)subscription and the
purge job: never on a request's path.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from sessionward.stores import _redis_record as fmt

if TYPE_CHECKING:
    from sessionward.stores.base import SessionRecord
    from sessionward.stores.redis import RedisStore


def keys_matching(store: RedisStore, suffix: str) -> list[str]:
    """Every key of the store's prefix followed by the glob `suffix`."""
    pattern = re.sub(r"([*?\[\]\\])", r"\\\1", store._p) + suffix

    def keys() -> list[str]:
        return [_s(k) for k in store.client.scan_iter(match=pattern, count=1000)]

    return store._read(keys)  # type: ignore[no-any-return]


def users(store: RedisStore, suffix: str = "ix") -> list[str]:
    """The encoded ids of every user with an index (`ix`: the current layout, `idx`: version 1)."""
    start = len(store._p) + 3  # P{u:
    return [k[start : -len("}:" + suffix)] for k in keys_matching(store, "{u:*}:" + suffix)]


def list_all(store: RedisStore, *, now: float, limit: int) -> list[SessionRecord]:
    records: list[SessionRecord] = []
    for u in users(store):
        records += store.list_for_user(_dec(u), now=now)
    return sorted(records, key=lambda r: (-r.created_at, r.id))[:limit]


def list_denied(store: RedisStore, *, now: float) -> dict[str, float]:
    keys = keys_matching(store, "d:*")
    start = len(store._p) + 2
    out: dict[str, float] = {}
    for i in range(0, len(keys), 500):
        batch = keys[i : i + 500]

        def values(batch: list[str] = batch) -> list[Any]:
            pipe = store.client.pipeline(transaction=False)
            for key in batch:
                pipe.get(key)
            return pipe.execute()  # type: ignore[no-any-return]

        for key, v in zip(batch, store._read(values), strict=True):
            if v is not None and float(v) > now:
                out[_dec(key[start:])] = float(v)
    return out


def purge_expired(store: RedisStore, *, now: float) -> int:
    """Pipelined over batches of users outside Cluster."""
    if store._legacy:
        for u in users(store, "idx"):
            store._convert_user(u)
    n = 0
    user_ids = [_dec(u) for u in users(store)]
    for i in range(0, len(user_ids), 100):
        batch = user_ids[i : i + 100]

        def read_members(batch: list[str] = batch) -> list[Any]:
            return store._each(batch, lambda uid, c: c.zrange(store._idx(store._user(uid)), 0, -1))

        member_lists = store._read(read_members)
        pairs = [(user_id, _dec(_s(m))) for user_id, ms in zip(batch, member_lists, strict=True) for m in ms]
        results = store._each([sid for _, sid in pairs], lambda sid, c: store._lua_delete(
            keys=[store._rec(sid)], args=[_num(now), "", store._chan, store._drop_msg(sid), "dead"], client=c))
        gone: dict[str, list[str]] = {}
        ptrs: list[str | bytes] = []
        for (user_id, sid), result in zip(pairs, results, strict=True):
            if isinstance(result, bytes):  # dead by `now`: deleted
                n += 1
                sh = fmt.unpack(sid, result).secret_hash
                if sh:
                    ptrs.append(store._secret_ptr(sh))
            if result is not None:  # deleted now, or gone already
                gone.setdefault(user_id, []).append(sid)
        store._drop(*ptrs)
        for user_id, sids in gone.items():
            store._unindex(user_id, *sids)
    with store._errors():
        for suffix, field in (("d:*", ""), ("once:*", ""), ("{t}:*", "x")):
            for key in keys_matching(store, suffix):
                n += int(store._lua_purge_one(keys=[key], args=[_num(now), field]))
    return n


def _dec(key_part: str) -> str:
    from sessionward.stores.redis import _dec as dec

    return dec(key_part)


def _num(x: float) -> str:
    return repr(float(x))


def _s(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
