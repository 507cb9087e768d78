# GENERATED from src/sessionward/aio/stores/redis.py by scripts/gen_sync.py: edit that file, not this one.
"""The Redis store (redis-py): standalone, TLS, unix socket, Sentinel and Cluster.

Key layout (P = prefix, default ``sw:``; U, S, J, K = user id, session id, jti, throttle key, kept as they are
when made of ``[A-Za-z0-9_.:@+-]`` and hex-encoded behind ``=`` otherwise, so no value can forge a key of
another kind or break out of a hash tag; H16 = the first 16 bytes of the secret hash, raw)::

    P r:S        string  the record, compact binary (`_redis_record`)   TTL = live_until() - now
    P s:H16      string  secret pointer -> "U S"                         TTL = expires_at - now
    P{u:U}:ix    zset    the user's session ids, scored by expires_at    TTL = the longest expires_at
    P d:J        string  denied until (seconds)                          TTL = until - now
    P{t}:K       hash    throttle counter f, l, x                        TTL = window after the last failure
    P once:O     string  a one-time use, until (seconds)                TTL = until - now
    P e:U        string  revocation epoch                                no TTL: one small key per user ever
                                                                          revoked; expiring it would revive
                                                                          old sessions

About 370 bytes of Redis memory per cookie session (see README, Sizing). A record is found by id (its key), by
secret (one pointer, written with ``SET NX`` before the record, which makes secrets unique, and always checked
against the record it names) and by user (the index). Every change of a record is one Lua script on its key,
which also publishes the invalidation for local caches (`_redis_lua`). The index is written before the record
and cleaned after it, so a record is never missing from its user's index; an index member whose record is
gone is skipped by readers, removed (at most `PRUNE_LIMIT` per login, so creation is O(1) amortized) once past
its absolute end, and by `purge_expired`. Expiry is decided by the caller's ``now`` against the stored
timestamps; Redis TTLs only do the cleaning.

Throttle counters all carry the hash tag ``{t}``: `throttle_update` changes the address, account and pair
counters of one login attempt together, so they must share a slot in Redis Cluster (which puts every counter
on one node). It is optimistic: read the counters (one pipeline), decide in Python, then one compare-and-set
script that writes only if no counter changed since the read; if one did, read and decide again (after a
short random pause, so that a burst of contenders spreads out instead of retrying in lockstep).

The record, its pointer and its index live in different hash slots, so a change touching several is a
sequence of single-key steps, each atomic, ordered so that a crash in between leaves only an orphan that
reads as "not found" (a pointer without its record, an index member without its record). A login that runs
concurrently with `delete_for_user` of the same user may survive it (it counts as a login just after);
`revoke_all` bumps the user's epoch first, which kills such a session anyway.

Records of the version-1 layout (a hash per record; see `_redis_legacy`) are converted when first looked up
and by `purge_expired`. Compact records of version 2 (times as doubles) are read as they are and become
version 3 (times as 48-bit milliseconds) when a script rewrites them with whole-millisecond times (see
`_redis_record`).

Connection errors, timeouts, cluster-down and read-only replicas raise `StoreUnavailable`. redis-py's own
retries are switched off; reads are retried once, writes never.

One source for both flavours: `AsyncRedisStore` (asyncio) and `RedisStore` (sync, generated from it).
The Lua scripts and the record format are shared, hand-written modules.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import math
import random
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import redis.exceptions as rex

from sessionward.exceptions import ConfigError, CreateError, StoreError, StoreUnavailable
from sessionward.stores import _redis_convert as conversion
from sessionward.stores import _redis_legacy as legacy
from sessionward.stores import _redis_record as fmt
from sessionward.stores import _redis_scan as scan
from sessionward.stores._flavour import sleep
from sessionward.stores._redis_client import _UNAVAILABLE, RedisURL, _is_cluster, make_client, parse_redis_url
from sessionward.stores._redis_lua import (
    _ADVANCE,
    _BUMP_EPOCH,
    _DELETE,
    _DENY,
    _INDEX_ADD,
    _PURGE_ONE,
    _THROTTLE_SWAP,
    _UPDATE,
    _USE_ONCE,
)
from sessionward.stores.base import UPDATABLE_FIELDS, SessionRecord, ThrottleDecision, ThrottleState, TokenState

__all__ = ["PRUNE_LIMIT", "RedisStore", "RedisURL", "make_client", "parse_redis_url"]

#: Index members past their absolute end removed per login, at most (creation stays O(1) amortized).
PRUNE_LIMIT = 32

_SAFE = re.compile(r"[A-Za-z0-9_.:@+-]{1,200}")
_HEX64 = re.compile(r"[0-9a-f]{64}")


def _enc(value: str) -> str:
    return value if _SAFE.fullmatch(value) else "=" + value.encode("utf-8", "surrogatepass").hex()


def _dec(key_part: str) -> str:
    """The value `_enc` encoded."""
    return bytes.fromhex(key_part[1:]).decode("utf-8", "surrogatepass") if key_part.startswith("=") else key_part


def _num(x: float) -> str:
    return repr(float(x))


def _ttl_ms(until: float, now: float) -> int:
    return max(1, math.ceil((until - now) * 1000))


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# -- the store -------------------------------------------------------------------------------------
class RedisStore:
    """The session store on Redis (`AsyncRedisStore` for asyncio, `RedisStore` sync). `client` is a Redis
    client (standalone or Sentinel-managed) or a Redis Cluster client, of the same flavour (async or sync);
    build one with `from_url`. Raises `ConfigError` for a prefix
    with hash-tag braces, `StoreUnavailable` whenever Redis cannot be reached. `convert_legacy=False` stops
    looking for records of the version-1 layout (one round trip saved per miss once none are left)."""

    def __init__(self, client: Any, *, prefix: str = "sw:", convert_legacy: bool = True) -> None:
        if "{" in prefix or "}" in prefix:
            raise ConfigError("SESSIONWARD_REDIS_PREFIX", "must not contain '{' or '}' (they are hash tags)")
        self._client = client
        self._p = prefix
        self._legacy = convert_legacy
        self._chan = ""  # the invalidation channel the scripts publish on ('' = none)
        self._cluster = _is_cluster(client)
        s = client.register_script
        self._lua_update, self._lua_advance, self._lua_delete = s(_UPDATE), s(_ADVANCE), s(_DELETE)
        self._lua_index_add, self._lua_deny, self._lua_bump = s(_INDEX_ADD), s(_DENY), s(_BUMP_EPOCH)
        self._lua_throttle_swap, self._lua_purge_one = s(_THROTTLE_SWAP), s(_PURGE_ONE)
        self._lua_legacy_take = s(legacy.LEGACY_TAKE)
        self._lua_use_once = s(_USE_ONCE)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str = "sw:",
        socket_timeout: float = 2.0,
        socket_connect_timeout: float = 2.0,
        max_connections: int = 50,
        health_check_interval: int = 30,
        ssl_ca_certs: str | None = None,
    ) -> RedisStore:
        """Connect by URL: `redis://`, `rediss://` (TLS, certificate and host name verified; `ssl_ca_certs`
        names a private CA bundle), `unix://`, `redis+sentinel://h:p[,h:p]/service[/db]`,
        `redis+cluster://h:p[,h:p]`. Raises `ConfigError` for a bad URL; `StoreUnavailable` if a cluster
        cannot be reached (the other modes connect on first use)."""
        return cls(
            make_client(url, socket_timeout=socket_timeout, socket_connect_timeout=socket_connect_timeout,
                        max_connections=max_connections, health_check_interval=health_check_interval,
                        ssl_ca_certs=ssl_ca_certs),
            prefix=prefix,
        )

    @property
    def client(self) -> Any:
        return self._client

    def publish_invalidations_to(self, channel: str) -> None:
        """Have every write script publish its invalidation on `channel` (see `CachedStore`)."""
        self._chan = channel

    @property
    def publishes_invalidations(self) -> bool:
        return bool(self._chan)

    # -- keys --------------------------------------------------------------------------------
    def _user(self, user_id: str) -> str:
        return _enc(user_id)

    def _rec(self, session_id: str) -> str:
        return f"{self._p}r:{_enc(session_id)}"

    def _idx(self, u: str) -> str:
        return f"{self._p}{{u:{u}}}:ix"

    def _secret_ptr(self, secret_hash: str) -> str | bytes:
        if _HEX64.fullmatch(secret_hash):
            return f"{self._p}s:".encode() + bytes.fromhex(secret_hash)[:16]
        return f"{self._p}S:{_enc(secret_hash)}"

    def _epoch_key(self, user_id: str) -> str:
        return f"{self._p}e:{_enc(user_id)}"

    def _deny_key(self, jti: str) -> str:
        return f"{self._p}d:{_enc(jti)}"

    def _once_key(self, key: str) -> str:
        return f"{self._p}once:{_enc(key)}"  # one key per use: any slot; `_enc` keeps braces out of it

    def _throttle_key(self, key: str) -> str:
        return f"{self._p}{{t}}:{_enc(key)}"  # one slot for all counters: see `throttle_update`

    def _drop_msg(self, session_id: str) -> str:
        return json.dumps(["drop", session_id], separators=(",", ":"))

    # -- plumbing ----------------------------------------------------------------------------
    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(f"Redis unavailable: {type(exc).__name__}") from exc
        except rex.RedisError as exc:
            raise StoreError(f"Redis error: {type(exc).__name__}") from exc

    def _read(self, fn: Callable[[], Any]) -> Any:
        """Run an idempotent read, retrying once after a connection-level failure."""
        with self._errors():
            try:
                return fn()
            except _UNAVAILABLE:
                pass
            return fn()

    def _drop(self, *keys: str | bytes) -> None:
        """Best-effort removal of keys whose record is already gone (they expire anyway)."""
        keys = tuple(k for k in keys if k)
        with contextlib.suppress(rex.RedisError, rex.RedisClusterException):
            if self._cluster:
                for k in keys:
                    self._client.delete(k)
            elif keys:
                self._client.delete(*keys)

    def _unindex(self, user_id: str, *session_ids: str) -> None:
        if session_ids:
            with contextlib.suppress(rex.RedisError, rex.RedisClusterException):
                self._client.zrem(self._idx(self._user(user_id)), *(_enc(s) for s in session_ids))

    def _forget(self, session_id: str, blob: bytes) -> None:
        """After a record was deleted: drop its pointer and its index entry."""
        record = fmt.unpack(session_id, blob)
        self._drop(self._secret_ptr(record.secret_hash) if record.secret_hash else "")
        self._unindex(record.user_id, session_id)

    def _get_blob(self, session_id: str) -> bytes | None:
        blob = self._read(lambda: self._client.get(self._rec(session_id)))
        if blob is None and self._legacy and self._convert_by_id(session_id):
            blob = self._read(lambda: self._client.get(self._rec(session_id)))
        return blob  # type: ignore[no-any-return]

    def _pointer(self, secret_hash: str) -> tuple[str, str] | None:
        """(encoded user, session id) that the secret pointer names."""
        v = self._read(lambda: self._client.get(self._secret_ptr(secret_hash)))
        if v is None and self._legacy and self._convert_by_secret(secret_hash):
            v = self._read(lambda: self._client.get(self._secret_ptr(secret_hash)))
        if v is None:
            return None
        u, _, m = _s(v).partition(" ")
        return u, _dec(m)

    # -- the session registry ---------------------------------------------------------------
    def create(self, record: SessionRecord, *, now: float) -> None:
        self._write_new(
            record, fmt.pack(record), now=now, rec_ttl=_ttl_ms(record.live_until(), now),
            end_ttl=_ttl_ms(record.expires_at, now),
        )

    def _write_new(self, record: SessionRecord, blob: bytes, *, now: float, rec_ttl: int, end_ttl: int) -> None:
        """Pointer (SET NX), then index, then record (SET NX). Raises `CreateError` on a collision, leaving
        nothing of the new record behind."""
        u, m = self._user(record.user_id), _enc(record.id)
        ptr = self._secret_ptr(record.secret_hash) if record.secret_hash is not None else ""
        with self._errors():
            if ptr and not self._client.set(ptr, f"{u} {m}", nx=True, px=end_ttl):
                raise CreateError("a session with this secret exists already")
            try:
                self._lua_index_add(
                    keys=[self._idx(u)], args=[_num(record.expires_at), m, end_ttl, _num(now), PRUNE_LIMIT]
                )
                created = self._client.set(self._rec(record.id), blob, nx=True, px=rec_ttl)
            except BaseException:
                self._drop(ptr)
                raise
        if not created:
            self._drop(ptr)
            other = self._read(lambda: self._client.get(self._rec(record.id)))
            if other is None or fmt.user_of(other) != record.user_id:
                self._unindex(record.user_id, record.id)
            raise CreateError("a session with this id exists already")

    def _live(self, session_id: str, blob: bytes | None, now: float) -> SessionRecord | None:
        if blob is None:
            return None
        record = fmt.unpack(session_id, blob)
        return record if record.is_live(now) else None

    def get(self, session_id: str, *, now: float) -> SessionRecord | None:
        return self._live(session_id, self._get_blob(session_id), now)

    def get_by_secret(self, secret_hash: str, *, now: float) -> SessionRecord | None:
        record, _epoch = self.load_by_secret(secret_hash, now=now)
        return record

    def load_by_secret(self, secret_hash: str, *, now: float) -> tuple[SessionRecord | None, int]:
        """Two round trips: the secret pointer, then the record and the user's epoch in one pipeline."""
        ptr = self._pointer(secret_hash)
        if ptr is None:
            return None, 0
        u, session_id = ptr

        def both() -> list[Any]:
            pipe = self._client.pipeline(transaction=False)
            pipe.get(self._rec(session_id))
            pipe.get(f"{self._p}e:{u}")
            return pipe.execute()  # type: ignore[no-any-return]

        blob, epoch = self._read(both)
        record = self._live(session_id, blob, now)
        if record is None or record.secret_hash is None or not hmac.compare_digest(
            _utf8(record.secret_hash), _utf8(secret_hash)
        ):  # the pointer matched on 16 bytes of the hash; the whole hash is compared in constant time
            return None, 0
        return record, int(epoch or 0)

    def token_state(self, *, jti: str, user_id: str, family_id: str, now: float) -> TokenState:
        """One round trip: denylist entry, epoch and the family record in one pipeline (a family of another
        user is not found)."""

        def three() -> list[Any]:
            pipe = self._client.pipeline(transaction=False)
            pipe.get(self._deny_key(jti))
            pipe.get(self._epoch_key(user_id))
            pipe.get(self._rec(family_id))
            return pipe.execute()  # type: ignore[no-any-return]

        denied, epoch, blob = self._read(three)
        if blob is None and self._legacy and self._convert_by_id(family_id):
            blob = self._read(lambda: self._client.get(self._rec(family_id)))
        family = self._live(family_id, blob, now)
        if family is not None and family.user_id != user_id:
            family = None
        return TokenState(denied=denied is not None and float(denied) > now, epoch=int(epoch or 0), family=family)

    def _retry_legacy(self, session_id: str, fn: Callable[[], Any]) -> bool:
        """Run a write script; if it found nothing, convert a version-1 record of that id and run it again."""
        with self._errors():
            ok = bool(fn())
        if not ok and self._legacy and self._convert_by_id(session_id):
            with self._errors():
                ok = bool(fn())
        return ok

    def update(self, session_id: str, changes: Mapping[str, Any], *, now: float) -> bool:
        """Raises `ValueError` for a field outside `UPDATABLE_FIELDS`."""
        unknown = set(changes) - UPDATABLE_FIELDS
        if unknown:
            raise ValueError(f"fields {sorted(unknown)} cannot be updated; allowed: {sorted(UPDATABLE_FIELDS)}")
        if not changes:
            return self.get(session_id, now=now) is not None
        args = [_num(now), self._chan, self._drop_msg(session_id)]
        args += ["" if k not in changes else _num(changes[k]) for k in ("last_seen", "idle_expires_at", "auth_at")]
        args += ["1", fmt.data_json(changes["data"])] if "data" in changes else ["", ""]
        key = self._rec(session_id)
        return self._retry_legacy(session_id, lambda: self._lua_update(keys=[key], args=args))

    def advance(
        self, session_id: str, *, expected_generation: int, last_seen: float, idle_expires_at: float, now: float
    ) -> bool:
        args = [_num(now), self._chan, self._drop_msg(session_id), str(int(expected_generation)), _num(last_seen),
                _num(idle_expires_at)]
        key = self._rec(session_id)
        return self._retry_legacy(session_id, lambda: self._lua_advance(keys=[key], args=args))

    def _delete_script(
        self, session_id: str, *, now: float | None, user_id: str = "", mode: str = ""
    ) -> bytes | None:
        args = ["" if now is None else _num(now), user_id, self._chan, self._drop_msg(session_id), mode]
        with self._errors():
            return self._lua_delete(keys=[self._rec(session_id)], args=args)  # type: ignore[no-any-return]

    def replace(self, old_id: str, new: SessionRecord, *, now: float) -> bool:
        """Raises `CreateError` (and keeps the old record) if `new`'s id or secret exists already. The new
        record is written first, then the old one deleted if it is still live (else the new one goes again):
        of concurrent replacements of one record exactly one wins."""
        if self.get(old_id, now=now) is None:
            return False
        blob = fmt.pack(new)
        self._write_new(
            new, blob, now=now, rec_ttl=_ttl_ms(new.live_until(), now), end_ttl=_ttl_ms(new.expires_at, now)
        )
        try:
            old_blob = self._delete_script(old_id, now=now)
        except BaseException:
            self._undo_new(new)
            raise
        if old_blob is None:
            self._undo_new(new)
            return False
        self._forget(old_id, old_blob)
        return True

    def _undo_new(self, new: SessionRecord) -> None:
        with contextlib.suppress(StoreError):
            self._delete_script(new.id, now=None, user_id=new.user_id)
        self._drop(self._secret_ptr(new.secret_hash) if new.secret_hash else "")
        self._unindex(new.user_id, new.id)

    def delete(self, session_id: str) -> bool:
        blob = self._delete_script(session_id, now=None)
        if blob is None and self._legacy and self._convert_by_id(session_id):
            blob = self._delete_script(session_id, now=None)
        if blob is None:
            return False
        self._forget(session_id, blob)
        return True

    def _members(self, user_id: str, now: float | None = None) -> list[str]:
        """The user's indexed session ids (only those whose absolute end is after `now`, if given)."""
        u = self._user(user_id)
        if self._legacy:
            self._convert_user(u)
        idx = self._idx(u)
        if now is None:
            raw = self._read(lambda: self._client.zrange(idx, 0, -1))
        else:
            raw = self._read(lambda: self._client.zrangebyscore(idx, f"({_num(now)}", "+inf"))
        return [_dec(_s(m)) for m in raw]

    def _each(self, session_ids: list[str], call: Callable[[str, Any], Any]) -> list[Any]:
        """`call(item, client_or_pipeline)` for each item (a session or user id): pipelined in batches
        outside Cluster. (Async: what `call` returns is awaited, which queues it on a pipeline.)"""
        out: list[Any] = []
        if self._cluster:
            with self._errors():
                return [call(sid, self._client) for sid in session_ids]
        for i in range(0, len(session_ids), 500):
            batch = session_ids[i : i + 500]

            def run(batch: list[str] = batch) -> list[Any]:
                pipe = self._client.pipeline(transaction=False)
                for sid in batch:
                    call(sid, pipe)
                return pipe.execute()  # type: ignore[no-any-return]

            with self._errors():
                out += run()
        return out

    def delete_for_user(self, user_id: str, *, except_id: str | None = None) -> int:
        ids = [sid for sid in self._members(user_id) if sid != except_id]
        blobs = self._each(ids, lambda sid, c: self._lua_delete(
            keys=[self._rec(sid)], args=["", user_id, self._chan, self._drop_msg(sid), ""], client=c))
        ptrs = []
        for sid, blob in zip(ids, blobs, strict=True):
            if blob:
                sh = fmt.unpack(sid, blob).secret_hash
                if sh:
                    ptrs.append(self._secret_ptr(sh))
        for i in range(0, len(ptrs), 500):
            self._drop(*ptrs[i : i + 500])
        for i in range(0, len(ids), 500):
            self._unindex(user_id, *ids[i : i + 500])
        return sum(1 for b in blobs if b)

    def list_for_user(self, user_id: str, *, now: float) -> list[SessionRecord]:
        ids = self._members(user_id, now)
        blobs = self._read(lambda: self._each(ids, lambda sid, c: c.get(self._rec(sid))))
        records = [r for sid, b in zip(ids, blobs, strict=True) if (r := self._live(sid, b, now)) is not None]
        records = [r for r in records if r.user_id == user_id]
        return sorted(records, key=lambda r: (-r.created_at, r.id))

    def list_all(self, *, now: float, limit: int = 1000) -> list[SessionRecord]:
        """Scans every user index (for the admin CLI, not for requests)."""
        return scan.list_all(self, now=now, limit=limit)

    # -- access-token denylist --------------------------------------------------------------
    def deny(self, jti: str, *, until: float, now: float) -> None:
        if until <= now:
            return
        msg = json.dumps(["deny", jti, float(until)], separators=(",", ":"))
        with self._errors():
            self._lua_deny(keys=[self._deny_key(jti)], args=[_num(until), _ttl_ms(until, now), self._chan, msg])

    def is_denied(self, jti: str, *, now: float) -> bool:
        v = self._read(lambda: self._client.get(self._deny_key(jti)))
        return v is not None and float(v) > now

    def list_denied(self, *, now: float) -> dict[str, float]:
        """Every denylist entry in force at `now` (jti -> until), for the local cache to load when it
        (re)subscribes. Scans the key space: rare use only, never per request."""
        return scan.list_denied(self, now=now)

    # -- one-time uses ------------------------------------------------------------------------
    def use_once(self, key: str, *, until: float, now: float) -> bool:
        """One key (any Cluster slot); the caller's `now` decides, the TTL cleans. A first use (the common
        case: every DPoP proof has a new `jti`) is one `SET NX PX`, about 10 us cheaper than a script call on
        the bench machine; only when the key exists does the script decide, atomically,
        whether its use has ended (`until` at or before `now`: the caller's clock, not Redis's TTL). Both steps
        are atomic alone, and the script only ever grants a key whose stored use has ended or that is gone."""
        if until <= now:
            return True
        once, value, ttl = self._once_key(key), _num(until), _ttl_ms(until, now)
        with self._errors():
            if self._client.set(once, value, nx=True, px=ttl):
                return True
            done = self._lua_use_once(keys=[once], args=[_num(now), value, ttl])
        return int(done) == 1

    # -- per-user revocation epoch ----------------------------------------------------------
    def get_epoch(self, user_id: str) -> int:
        v = self._read(lambda: self._client.get(self._epoch_key(user_id)))
        return int(v or 0)

    def bump_epoch(self, user_id: str) -> int:
        prefix = '["epoch",' + json.dumps(user_id) + ","
        with self._errors():
            return int(self._lua_bump(keys=[self._epoch_key(user_id)], args=[self._chan, prefix]))

    # -- throttling counters ----------------------------------------------------------------
    def throttle_read(self, keys: Sequence[str], *, now: float, window: float) -> list[ThrottleState]:
        """One pipeline of HMGETs (all keys in the `{t}` slot)."""

        def read() -> list[Any]:
            pipe = self._client.pipeline(transaction=False)
            for key in keys:
                pipe.hmget(self._throttle_key(key), ["f", "l"])
            return pipe.execute()  # type: ignore[no-any-return]

        out = []
        rows = self._read(read) if keys else []
        for f, last in rows:
            if f is None or int(f) == 0 or float(last) <= now - window:
                out.append(ThrottleState())
            else:
                out.append(ThrottleState(failures=int(f), last_failure_at=float(last)))
        return out

    #: compare-and-set rounds before `throttle_update` gives up (StoreUnavailable: fail closed)
    THROTTLE_TRIES = 100

    def _throttle_swap(self, keys: Sequence[str], old: list[ThrottleState], new: list[ThrottleState], *,
                       now: float, window: float) -> bool:
        args: list[Any] = [_num(now), _num(window)]
        for before, after in zip(old, new, strict=True):
            args += [str(int(before.failures)), _num(before.last_failure_at), str(int(after.failures)),
                     _num(after.last_failure_at), _num(after.last_failure_at + window)]
        with self._errors():
            return bool(self._lua_throttle_swap(keys=[self._throttle_key(k) for k in keys], args=args))

    def throttle_update(
        self, keys: Sequence[str], decide: ThrottleDecision, *, now: float, window: float
    ) -> tuple[list[ThrottleState], list[ThrottleState] | None]:
        for tries in range(self.THROTTLE_TRIES):
            if tries:
                sleep(random.uniform(0, 0.001 * 2 ** min(tries, 5)))  # contention backoff, not expiry
            states = self.throttle_read(keys, now=now, window=window)
            new = decide(states)
            if new is None:
                return states, None
            if self._throttle_swap(keys, states, list(new), now=now, window=window):
                return states, list(new)
        raise StoreUnavailable("Redis throttle counters too contended")

    def throttle_reset(self, *keys: str) -> None:
        if keys:
            with self._errors():
                self._client.delete(*(self._throttle_key(k) for k in keys))

    # -- maintenance ------------------------------------------------------------------------
    def purge_expired(self, *, now: float) -> int:
        """Redis TTLs already clean up; this also removes what is dead by the caller's clock, every index
        member whose record is gone, and converts what is left of the version-1 layout (see `_redis_scan`)."""
        return scan.purge_expired(self, now=now)

    def ping(self) -> None:
        self._read(self._client.ping)

    def close(self) -> None:
        """Close the client's connections (and, for Sentinel, those to the sentinels)."""
        manager = getattr(getattr(self._client, "connection_pool", None), "sentinel_manager", None)
        for sentinel in getattr(manager, "sentinels", ()):
            with contextlib.suppress(rex.RedisError, OSError):
                sentinel.close()
        with contextlib.suppress(rex.RedisError, rex.RedisClusterException, OSError):
            self._client.close()

    # -- the version-1 layout (see `_redis_legacy`) ------------------------------------------
    def _convert_by_id(self, session_id: str) -> bool:
        return conversion.convert_by_id(self, session_id)

    def _convert_by_secret(self, secret_hash: str) -> bool:
        return conversion.convert_by_secret(self, secret_hash)

    def _convert_user(self, u: str) -> None:
        conversion.convert_user(self, u)


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")
