"""The compact record format of the Redis store: one binary string per session (about 130 bytes for a cookie
session with a typical browser user agent, against about 1.1 KB for the hash of 15 fields it replaces).

Layout (little endian)::

    header  <BBdddddIIH   version (2), kind (0 cookie, 1 token), created_at, last_seen, auth_at, expires_at,
                          idle_expires_at (exact doubles), epoch, generation (uint32), offset of `data`
    user    <H + bytes    the user id (UTF-8, surrogates kept)
    secret  <B [+ bytes]  0: none; 1: 32 bytes (a 64-digit lower-case hex hash, stored raw);
                          2: <H + bytes (any other text)
    salt    <B + bytes
    client  <H + bytes    raw deflate of the JSON [user_agent, ip] with a preset dictionary of common user-agent
                          words, or the JSON itself when that is shorter (high bit of the length set)
    data    to the end    JSON of `data` (sorted keys, no spaces)

The session id is the key (`P r:<id>`), not repeated here. The Lua scripts read and rewrite only the header,
the user and the `data` tail (see `_redis_lua`); everything else is Python's.
"""

from __future__ import annotations

import json
import re
import struct
import zlib
from typing import Any

from .base import SessionRecord

VERSION = 2
HEADER = struct.Struct("<BBdddddIIH")
_U16 = struct.Struct("<H")
_RAW_FLAG = 0x8000
_MAX_SALT = 0xFF  # the salt's length is one byte
_MAX_USER = 0xFFFF  # the user id's length is two bytes
_HEX64 = re.compile(r"[0-9a-f]{64}")
_MAX_U32 = 2**32 - 1

# Words that most user agents are made of. Part of the format: never change it, add a new VERSION instead.
_UA_WORDS = (
    b"Mozilla/5.0 (Windows NT 10.0; Win64; x64) (Macintosh; Intel Mac OS X 10_15_7) (X11; Linux x86_64) "
    b"(X11; Ubuntu; Linux x86_64; rv:) (iPhone; CPU iPhone OS 17_0 like Mac OS X) (iPad; CPU OS like Mac OS X) "
    b"(Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/.0.0.0 Mobile Safari/537.36 "
    b"Version/17.0 Safari/605.1.15 Edg/ OPR/ Gecko/20100101 Firefox/ python-requests/ curl/ "
    b"[\"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\",\"127.0.0.1\"]"
)


def _deflate(raw: bytes) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, _UA_WORDS)
    return c.compress(raw) + c.flush()


def _inflate(packed: bytes) -> bytes:
    d = zlib.decompressobj(-15, _UA_WORDS)
    return d.decompress(packed) + d.flush()


def _text(value: str) -> bytes:
    return value.encode("utf-8", "surrogatepass")


def _str(value: bytes) -> str:
    return value.decode("utf-8", "surrogatepass")


def _u32(value: int, name: str) -> int:
    if not 0 <= value <= _MAX_U32:
        raise ValueError(f"{name} {value} does not fit the Redis record format")
    return value


def data_json(data: Any) -> str:
    return json.dumps(dict(data), separators=(",", ":"), sort_keys=True)


def pack(record: SessionRecord) -> bytes:
    """The stored form of `record` (without its id). Raises ValueError for an epoch or generation past 2**32."""
    user = _text(record.user_id)
    if record.secret_hash is None:
        secret = b"\x00"
    elif _HEX64.fullmatch(record.secret_hash):
        secret = b"\x01" + bytes.fromhex(record.secret_hash)
    else:
        sh = _text(record.secret_hash)
        secret = b"\x02" + _U16.pack(len(sh)) + sh
    salt = _text(record.salt)
    client_json = _text(json.dumps([record.user_agent, record.ip], separators=(",", ":")))
    client = _deflate(client_json)
    if len(client) >= len(client_json):
        client = client_json
        client_len = _U16.pack(len(client) | _RAW_FLAG)
    else:
        client_len = _U16.pack(len(client))
    body = _U16.pack(len(user)) + user + secret + bytes([len(salt)]) + salt + client_len + client
    offset = HEADER.size + len(body) + 1  # 1-based, as Lua counts
    header = HEADER.pack(
        VERSION, 0 if record.kind == "cookie" else 1, record.created_at, record.last_seen, record.auth_at,
        record.expires_at, record.idle_expires_at, _u32(int(record.epoch), "epoch"),
        _u32(int(record.generation), "generation"), offset,
    )
    if len(salt) > _MAX_SALT or len(user) > _MAX_USER or len(client_json) >= _RAW_FLAG:
        raise ValueError("a field is too long for the Redis record format")
    return header + body + _text(data_json(record.data))


def user_of(blob: bytes) -> str:
    (n,) = _U16.unpack_from(blob, HEADER.size)
    return _str(blob[HEADER.size + 2 : HEADER.size + 2 + n])


def unpack(session_id: str, blob: bytes) -> SessionRecord:
    """The record stored as `blob` under `session_id`. Raises ValueError for a blob of another format."""
    if not blob or blob[0] != VERSION:
        raise ValueError("not a version-2 session record")
    _v, kind, created, last_seen, auth_at, expires, idle, epoch, generation, offset = HEADER.unpack_from(blob)
    pos = HEADER.size
    (n,) = _U16.unpack_from(blob, pos)
    user = _str(blob[pos + 2 : pos + 2 + n])
    pos += 2 + n
    tag = blob[pos]
    pos += 1
    if tag == 0:
        secret_hash = None
    elif tag == 1:
        secret_hash = blob[pos : pos + 32].hex()
        pos += 32
    else:
        (n,) = _U16.unpack_from(blob, pos)
        secret_hash = _str(blob[pos + 2 : pos + 2 + n])
        pos += 2 + n
    n = blob[pos]
    salt = _str(blob[pos + 1 : pos + 1 + n])
    pos += 1 + n
    (n,) = _U16.unpack_from(blob, pos)
    raw, n = bool(n & _RAW_FLAG), n & ~_RAW_FLAG
    client = blob[pos + 2 : pos + 2 + n]
    user_agent, ip = json.loads(client if raw else _inflate(client))
    return SessionRecord(
        id=session_id, kind="cookie" if kind == 0 else "token", user_id=user, created_at=created,
        last_seen=last_seen, auth_at=auth_at, expires_at=expires, idle_expires_at=idle, epoch=epoch,
        secret_hash=secret_hash, generation=generation, salt=salt, user_agent=user_agent, ip=ip,
        data=json.loads(blob[offset - 1 :]),
    )
