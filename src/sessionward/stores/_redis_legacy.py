"""Reading the Redis store's version-1 layout (before 0.2), for converting it, record by record, to the compact one.

Version 1 kept each session in a hash of 15 fields under ``P{u:U}:s:S`` with a user index ``P{u:U}:idx``
(scored by created_at) and two pointers, ``P id:S -> U`` and ``P h:<secret hash> -> "U S"``. A record of that
layout is converted when it is first looked up (by id, by secret, or for its user's list or revocation) and by
`RedisStore.purge_expired` (the periodic purge): `LEGACY_TAKE` reads and deletes it atomically, then the new
keys are written with the time it had left. Nothing else reads the old keys, which expire on their own.

Pure and shared by both flavours; the conversion itself (I/O) is in `_redis_convert` (generated from
`sessionward/aio/stores/_redis_convert.py`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .base import SessionRecord

# KEYS: old record hash, old user index   ARGV: member
# Returns {PTTL, HGETALL...} and deletes both the record and its index entry, or false if it is gone.
LEGACY_TAKE = """
local h = redis.call('HGETALL', KEYS[1])
local t = redis.call('PTTL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
if #h == 0 or t < 0 then redis.call('DEL', KEYS[1]) return false end
redis.call('DEL', KEYS[1])
table.insert(h, 1, t)
return h
"""


def parse_hash(h: Mapping[Any, Any] | list[Any]) -> SessionRecord:
    """A version-1 record from its HGETALL (a mapping, or Lua's flat list)."""
    if isinstance(h, list):
        h = dict(zip(h[::2], h[1::2], strict=True))
    d = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v) for k, v in h.items()}
    return SessionRecord(
        id=d["id"], kind=d["kind"], user_id=d["user_id"], created_at=float(d["created_at"]),  # type: ignore[arg-type]
        last_seen=float(d["last_seen"]), auth_at=float(d["auth_at"]), expires_at=float(d["expires_at"]),
        idle_expires_at=float(d["idle_expires_at"]), epoch=int(d["epoch"]), secret_hash=d.get("secret_hash"),
        generation=int(d["generation"]), salt=d["salt"], user_agent=d["user_agent"], ip=d["ip"],
        data=json.loads(d["data"]),
    )


def hash_fields(record: SessionRecord) -> dict[str, str]:
    """The fields version 1 wrote for `record` (used by tests and the bench to write old-layout records)."""
    fields = {
        "id": record.id, "kind": record.kind, "user_id": record.user_id,
        "created_at": repr(float(record.created_at)), "last_seen": repr(float(record.last_seen)),
        "auth_at": repr(float(record.auth_at)), "expires_at": repr(float(record.expires_at)),
        "idle_expires_at": repr(float(record.idle_expires_at)), "epoch": str(int(record.epoch)),
        "generation": str(int(record.generation)), "salt": record.salt, "user_agent": record.user_agent,
        "ip": record.ip, "data": json.dumps(dict(record.data), separators=(",", ":"), sort_keys=True),
    }
    if record.secret_hash is not None:
        fields["secret_hash"] = record.secret_hash
    return fields
