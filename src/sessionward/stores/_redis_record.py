"""The compact record format of the Redis store: one binary string per session (about 120 bytes for a cookie
session with a typical browser user agent, against about 1.1 KB for the hash of 15 fields it replaces).

Layout (little endian)::

    header  version 3: <BB + 5 x uint48 + IIH   (42 bytes)
            version 2: <BBdddddIIH             (52 bytes)
                          version, kind (0 cookie, 1 token), created_at, last_seen, auth_at, expires_at,
                          idle_expires_at, epoch, generation (uint32), offset of `data`.
                          Version 3 holds the five times as whole milliseconds (t * 1000); it is written only
                          when every time is exactly `ms / 1000` (true of the system clock's times, which are
                          whole milliseconds: `SystemClock`), so both versions give back the exact doubles
                          stored. Any other time (a custom clock's) is written as version 2, exact doubles.
    user    <H + bytes    the user id (UTF-8, surrogates kept)
    secret  <B [+ bytes]  0: none; 1: 32 bytes (a 64-digit lower-case hex hash, stored raw);
                          2: <H + bytes (any other text)
    salt    <B + bytes
    client  <H + bytes    raw deflate of the JSON [user_agent, ip] with a preset dictionary of common user-agent
                          words, or the JSON itself when that is shorter (high bit of the length set)
    data    to the end    JSON of `data` (sorted keys, no spaces)

The session id is the key (`P r:<id>`), not repeated here. The Lua scripts read and rewrite only the header,
the user and the `data` tail (see `_redis_lua`); everything else is Python's. They read both versions and, like
`pack`, write version 3 whenever the times allow it: a version-2 record (every record written before version 3)
becomes version 3 on its first rewrite once its times are whole milliseconds, and is read as it is until then.

Why 48-bit milliseconds: the record's value drops from 126 to 116 bytes for a typical session, which takes its
allocation from jemalloc's 160-byte size class to the 128-byte one (32 bytes less per session in Redis).
"""

from __future__ import annotations

import json
import math
import re
import struct
import zlib
from typing import Any

from .base import SessionRecord

VERSION = 3
V2 = 2  # times as doubles: read, and still written for times that are not whole milliseconds
HEADER = struct.Struct("<BB" + "IH" * 5 + "IIH")  # version 3: each uint48 time as its low 32 and high 16 bits
HEADER_V2 = struct.Struct("<BBdddddIIH")
_HEADERS = {VERSION: HEADER, V2: HEADER_V2}
_MAX_MS = 2**48 - 1
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


def millis(t: float) -> int | None:
    """`t` (seconds) as whole milliseconds if `ms / 1000` gives back exactly `t` (and it fits 48 bits), else None.
    The Lua scripts decide the same way (`_redis_lua`)."""
    if not math.isfinite(t):
        return None
    ms = round(t * 1000)
    return ms if 0 <= ms <= _MAX_MS and ms / 1000 == t else None


def _header(blob: bytes) -> struct.Struct:
    try:
        return _HEADERS[blob[0]]
    except (IndexError, KeyError):
        raise ValueError("not a version-2 or version-3 session record") from None


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
    kind = 0 if record.kind == "cookie" else 1
    epoch, generation = _u32(int(record.epoch), "epoch"), _u32(int(record.generation), "generation")
    times = (record.created_at, record.last_seen, record.auth_at, record.expires_at, record.idle_expires_at)
    ms = [millis(t) for t in times]
    if all(m is not None for m in ms):
        split = [part for m in ms for part in (m & 0xFFFFFFFF, m >> 32)]  # type: ignore[operator]
        offset = HEADER.size + len(body) + 1  # 1-based, as Lua counts
        header = HEADER.pack(VERSION, kind, *split, epoch, generation, offset)
    else:
        offset = HEADER_V2.size + len(body) + 1
        header = HEADER_V2.pack(V2, kind, *times, epoch, generation, offset)
    if len(salt) > _MAX_SALT or len(user) > _MAX_USER or len(client_json) >= _RAW_FLAG:
        raise ValueError("a field is too long for the Redis record format")
    return header + body + _text(data_json(record.data))


def user_of(blob: bytes) -> str:
    size = _header(blob).size
    (n,) = _U16.unpack_from(blob, size)
    return _str(blob[size + 2 : size + 2 + n])


def _times(blob: bytes) -> tuple[tuple[float, ...], int, int, int, int]:
    """(the five times, kind, epoch, generation, offset of `data`) from either header."""
    if blob[0] == V2:
        _v, kind, *rest = HEADER_V2.unpack_from(blob)
        return tuple(rest[:5]), kind, rest[5], rest[6], rest[7]
    _v, kind, *rest = HEADER.unpack_from(blob)
    times = tuple((rest[i] | rest[i + 1] << 32) / 1000 for i in range(0, 10, 2))
    return times, kind, rest[10], rest[11], rest[12]


def unpack(session_id: str, blob: bytes) -> SessionRecord:
    """The record stored as `blob` under `session_id`. Raises ValueError for a blob of another format."""
    pos = _header(blob).size
    (created, last_seen, auth_at, expires, idle), kind, epoch, generation, offset = _times(blob)
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
