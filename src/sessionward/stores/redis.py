"""The Redis store (redis-py): standalone, TLS, unix socket, Sentinel and Cluster.

Key layout (P = prefix, default ``sw:``; U, S, H, J, K = user id, session id, secret hash, jti, throttle
key, kept as they are when made of ``[A-Za-z0-9_.:@+-]`` and hex-encoded behind ``=`` otherwise, so no
value can forge a key of another kind or break out of a hash tag)::

    P{u:U}:s:S   hash    the session record                 TTL = live_until() - now, moved by update/advance
    P{u:U}:idx   zset    the user's session ids by created_at  TTL = the longest TTL of its records
    P id:S       string  pointer S -> U                      TTL = expires_at - now (>= the record's)
    P h:H        string  pointer H -> "U S"                  TTL = expires_at - now
    P d:J        string  denied until (seconds)             TTL = until - now
    P{t}:K       hash    throttle counter f, l, x            TTL = window after the last failure
    P e:U        string  revocation epoch                    no TTL: one small key per user ever revoked;
                                                              expiring it would revive old sessions

Why this shape: a record is found three ways (by id, by secret hash, by user). Atomic changes need one
hash slot in Redis Cluster, so the record and its user index share the hash tag ``{u:U}`` and every
multi-step change of them (create, update, advance, replace, delete, delete_for_user, list with pruning)
is one Lua script on that slot. The id and secret lookups cannot live in that slot (the caller does not
know U yet), so they are *pointers*: written with ``SET NX`` before the record (which also makes
id/secret uniqueness global), deleted after it, and always checked against the record they point to,
so a dangling pointer means "not found", never a wrong record. A pointer lives until the record's
absolute end, the record only until ``live_until()``, so a live record always has its pointers.
The index is pruned of dead members by every script that touches it, and its TTL follows its longest
record: nothing accumulates. Expiry is decided by the caller's ``now`` against the stored timestamps;
Redis TTLs only do the cleaning.

Throttle counters all carry the hash tag ``{t}``: `throttle_update` changes the address, account and pair
counters of one login attempt together, so they must share a slot in Redis Cluster (which puts every counter
on one node). It is optimistic: read the counters (one pipeline), decide in Python, then one compare-and-set
script that writes only if no counter changed since the read; if one did, read and decide again (after a
short random pause, so that a burst of contenders spreads out instead of retrying in lockstep).

``replace`` is one script when both records are in one slot (always outside Cluster; inside Cluster when
the user does not change, i.e. every session rotation). Across users in Cluster it deletes the old
record first, then creates the new one (the old id is dead before the new one works).

Connection errors, timeouts, cluster-down and read-only replicas raise `StoreUnavailable`. redis-py's own
retries are switched off; reads (GET, HGETALL, list scripts that only prune dead members) are retried
once, writes never.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import redis.exceptions as rex

from ..exceptions import ConfigError, CreateError, StoreError, StoreUnavailable
from ._redis_client import _UNAVAILABLE, RedisURL, _is_cluster, make_client, parse_redis_url
from ._redis_lua import (
    _ADVANCE,
    _CREATE,
    _DELETE,
    _DELETE_USER,
    _DENY,
    _LIST,
    _PURGE_ONE,
    _REPLACE,
    _THROTTLE_SWAP,
    _UPDATE,
)
from .base import UPDATABLE_FIELDS, SessionRecord, ThrottleDecision, ThrottleState, TokenState

__all__ = ["RedisStore", "RedisURL", "parse_redis_url"]

T = TypeVar("T")

_SAFE = re.compile(r"[A-Za-z0-9_.:@+-]{1,200}")

def _enc(value: str) -> str:
    return value if _SAFE.fullmatch(value) else "=" + value.encode("utf-8", "surrogatepass").hex()


def _dec(key_part: str) -> str:
    """The value `_enc` encoded."""
    return bytes.fromhex(key_part[1:]).decode("utf-8", "surrogatepass") if key_part.startswith("=") else key_part


def _num(x: float) -> str:
    return repr(float(x))


def _ttl_ms(until: float, now: float) -> int:
    return max(1, math.ceil((until - now) * 1000))


def _record_fields(record: SessionRecord) -> list[str]:
    fields = {
        "id": record.id, "kind": record.kind, "user_id": record.user_id,
        "created_at": _num(record.created_at), "last_seen": _num(record.last_seen),
        "auth_at": _num(record.auth_at), "expires_at": _num(record.expires_at),
        "idle_expires_at": _num(record.idle_expires_at), "epoch": str(int(record.epoch)),
        "generation": str(int(record.generation)), "salt": record.salt, "user_agent": record.user_agent,
        "ip": record.ip, "data": json.dumps(dict(record.data), separators=(",", ":"), sort_keys=True),
    }
    if record.secret_hash is not None:
        fields["secret_hash"] = record.secret_hash
    return [x for kv in fields.items() for x in kv]


def _parse_record(h: Mapping[Any, Any] | list[Any]) -> SessionRecord:
    if isinstance(h, list):  # flat HGETALL from Lua
        h = dict(zip(h[::2], h[1::2], strict=True))
    d = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v) for k, v in h.items()}
    return SessionRecord(
        id=d["id"], kind=d["kind"], user_id=d["user_id"], created_at=float(d["created_at"]),
        last_seen=float(d["last_seen"]), auth_at=float(d["auth_at"]), expires_at=float(d["expires_at"]),
        idle_expires_at=float(d["idle_expires_at"]), epoch=int(d["epoch"]), secret_hash=d.get("secret_hash"),
        generation=int(d["generation"]), salt=d["salt"], user_agent=d["user_agent"], ip=d["ip"],
        data=json.loads(d["data"]),
    )


# -- the store -------------------------------------------------------------------------------------
class RedisStore:
    """`SessionStore` on Redis. `client` is a `redis.Redis` (standalone or Sentinel-managed) or a
    `redis.cluster.RedisCluster`; build one with `RedisStore.from_url`. Raises `ConfigError` for a prefix
    with hash-tag braces, `StoreUnavailable` whenever Redis cannot be reached."""

    def __init__(self, client: Any, *, prefix: str = "sw:") -> None:
        if "{" in prefix or "}" in prefix:
            raise ConfigError("SESSIONWARD_REDIS_PREFIX", "must not contain '{' or '}' (they are hash tags)")
        self._client = client
        self._p = prefix
        self._cluster = _is_cluster(client)
        s = client.register_script
        self._lua_create, self._lua_update, self._lua_advance = s(_CREATE), s(_UPDATE), s(_ADVANCE)
        self._lua_delete, self._lua_replace, self._lua_delete_user = s(_DELETE), s(_REPLACE), s(_DELETE_USER)
        self._lua_list, self._lua_deny = s(_LIST), s(_DENY)
        self._lua_throttle_swap, self._lua_purge_one = s(_THROTTLE_SWAP), s(_PURGE_ONE)

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

    # -- keys --------------------------------------------------------------------------------
    def _user(self, user_id: str) -> str:
        return _enc(user_id)

    def _recprefix(self, u: str) -> str:
        return f"{self._p}{{u:{u}}}:s:"

    def _idx(self, u: str) -> str:
        return f"{self._p}{{u:{u}}}:idx"

    def _id_ptr(self, session_id: str) -> str:
        return f"{self._p}id:{_enc(session_id)}"

    def _secret_ptr(self, secret_hash: str) -> str:
        return f"{self._p}h:{_enc(secret_hash)}"

    # -- plumbing ----------------------------------------------------------------------------
    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(f"Redis unavailable: {type(exc).__name__}") from exc
        except rex.RedisError as exc:
            raise StoreError(f"Redis error: {type(exc).__name__}") from exc

    def _read(self, fn: Callable[[], T]) -> T:
        """Run an idempotent read, retrying once after a connection-level failure."""
        with self._errors():
            try:
                return fn()
            except _UNAVAILABLE:
                pass
            return fn()

    def _drop(self, *keys: str) -> None:
        """Best-effort removal of pointers whose record is already gone (they expire anyway)."""
        keys = tuple(k for k in keys if k)
        if keys:
            with contextlib.suppress(rex.RedisError, rex.RedisClusterException):
                self._client.delete(*keys)

    def _resolve(self, session_id: str) -> str | None:
        """The encoded user id that the id pointer names (a read)."""
        v = self._read(lambda: self._client.get(self._id_ptr(session_id)))
        return None if v is None else v.decode()

    def _claim_pointers(self, record: SessionRecord, now: float) -> list[str]:
        """SET NX the id and secret pointers of a new record; raises `CreateError` on a collision."""
        u, ttl = self._user(record.user_id), _ttl_ms(record.expires_at, now)
        claimed: list[str] = []
        wanted = [(self._id_ptr(record.id), u)]
        if record.secret_hash is not None:
            wanted.append((self._secret_ptr(record.secret_hash), f"{u} {_enc(record.id)}"))
        with self._errors():
            for key, value in wanted:
                if not self._client.set(key, value, nx=True, px=ttl):
                    self._drop(*claimed)
                    raise CreateError("a session with this id or secret exists already")
                claimed.append(key)
        return claimed

    # -- the session registry ---------------------------------------------------------------
    def create(self, record: SessionRecord, *, now: float) -> None:
        claimed = self._claim_pointers(record, now)
        u, m = self._user(record.user_id), _enc(record.id)
        args = [self._recprefix(u), m, _num(record.created_at), _ttl_ms(record.live_until(), now),
                *_record_fields(record)]
        with self._errors():
            ok = self._lua_create(keys=[self._recprefix(u) + m, self._idx(u)], args=args)
        if not ok:
            self._drop(*claimed)
            raise CreateError("a session with this id exists already")

    def _load(self, u: str, session_id: str, now: float) -> SessionRecord | None:
        h = self._read(lambda: self._client.hgetall(self._recprefix(u) + _enc(session_id)))
        if not h:
            return None
        record = _parse_record(h)
        return record if record.id == session_id and record.is_live(now) else None

    def get(self, session_id: str, *, now: float) -> SessionRecord | None:
        u = self._resolve(session_id)
        return None if u is None else self._load(u, session_id, now)

    def get_by_secret(self, secret_hash: str, *, now: float) -> SessionRecord | None:
        v = self._read(lambda: self._client.get(self._secret_ptr(secret_hash)))
        if v is None:
            return None
        u, _, m = v.decode().partition(" ")
        h = self._read(lambda: self._client.hgetall(self._recprefix(u) + m))
        if not h:
            return None
        record = _parse_record(h)
        return record if record.secret_hash == secret_hash and record.is_live(now) else None

    def load_by_secret(self, secret_hash: str, *, now: float) -> tuple[SessionRecord | None, int]:
        """Two round trips: the secret pointer, then the record and the user's epoch in one pipeline."""
        v = self._read(lambda: self._client.get(self._secret_ptr(secret_hash)))
        if v is None:
            return None, 0
        u, _, m = v.decode().partition(" ")

        def both() -> list[Any]:
            pipe = self._client.pipeline(transaction=False)
            pipe.hgetall(self._recprefix(u) + m)
            pipe.get(f"{self._p}e:{u}")
            return pipe.execute()  # type: ignore[no-any-return]

        h, epoch = self._read(both)
        if not h:
            return None, 0
        record = _parse_record(h)
        if record.secret_hash != secret_hash or not record.is_live(now):
            return None, 0
        return record, int(epoch or 0)

    def token_state(self, *, jti: str, user_id: str, family_id: str, now: float) -> TokenState:
        """One round trip: denylist entry, epoch and the family record (looked up under the token's user, so
        a family of another user is simply not found) in one pipeline."""
        u = self._user(user_id)

        def three() -> list[Any]:
            pipe = self._client.pipeline(transaction=False)
            pipe.get(self._deny_key(jti))
            pipe.get(self._epoch_key(user_id))
            pipe.hgetall(self._recprefix(u) + _enc(family_id))
            return pipe.execute()  # type: ignore[no-any-return]

        denied, epoch, h = self._read(three)
        family = None
        if h:
            record = _parse_record(h)
            if record.id == family_id and record.user_id == user_id and record.is_live(now):
                family = record
        return TokenState(denied=denied is not None and float(denied) > now, epoch=int(epoch or 0), family=family)

    def update(self, session_id: str, changes: Mapping[str, Any], *, now: float) -> bool:
        """Raises `ValueError` for a field outside `UPDATABLE_FIELDS`."""
        unknown = set(changes) - UPDATABLE_FIELDS
        if unknown:
            raise ValueError(f"fields {sorted(unknown)} cannot be updated; allowed: {sorted(UPDATABLE_FIELDS)}")
        if not changes:
            return self.get(session_id, now=now) is not None
        pairs: list[str] = []
        for k, v in changes.items():
            pairs += [k, json.dumps(dict(v), separators=(",", ":"), sort_keys=True) if k == "data" else _num(v)]
        u = self._resolve(session_id)
        if u is None:
            return False
        key = self._recprefix(u) + _enc(session_id)
        with self._errors():
            return bool(self._lua_update(keys=[key, self._idx(u)], args=[self._recprefix(u), _num(now), *pairs]))

    def replace(self, old_id: str, new: SessionRecord, *, now: float) -> bool:
        """Raises `CreateError` (and keeps the old record) if `new`'s id or secret exists already."""
        old_u = self._resolve(old_id)
        if old_u is None:
            return False
        old_m, new_u, new_m = _enc(old_id), self._user(new.user_id), _enc(new.id)
        claimed = self._claim_pointers(new, now)
        old_keys = [self._recprefix(old_u) + old_m, self._idx(old_u)]
        new_keys = [self._recprefix(new_u) + new_m, self._idx(new_u)]
        created = [self._recprefix(new_u), new_m, _num(new.created_at), _ttl_ms(new.live_until(), now)]
        try:
            with self._errors():
                if self._cluster and old_u != new_u:  # two slots: delete first, then create
                    sh = self._lua_delete(keys=old_keys, args=[self._recprefix(old_u), old_m, _num(now)])
                    if sh is None:
                        self._drop(*claimed)
                        return False
                    if not self._lua_create(keys=new_keys, args=[*created, *_record_fields(new)]):
                        raise CreateError("a session with this id exists already")
                    result: Any = [sh]
                else:
                    result = self._lua_replace(
                        keys=[*old_keys, *new_keys],
                        args=[self._recprefix(old_u), old_m, self._recprefix(new_u), new_m, _num(now),
                              created[2], created[3], *_record_fields(new)],
                    )
        except BaseException:
            self._drop(*claimed)
            raise
        if result == 0:
            self._drop(*claimed)
            return False
        if result == -1:
            self._drop(*claimed)
            raise CreateError("a session with this id exists already")
        sh = result[0].decode() if isinstance(result[0], bytes) else result[0]
        self._drop(self._id_ptr(old_id), self._secret_ptr(sh) if sh else "")
        return True

    def advance(
        self, session_id: str, *, expected_generation: int, last_seen: float, idle_expires_at: float, now: float
    ) -> bool:
        u = self._resolve(session_id)
        if u is None:
            return False
        key = self._recprefix(u) + _enc(session_id)
        args = [self._recprefix(u), _num(now), str(int(expected_generation)), _num(last_seen), _num(idle_expires_at)]
        with self._errors():
            return bool(self._lua_advance(keys=[key, self._idx(u)], args=args))

    def delete(self, session_id: str) -> bool:
        u = self._resolve(session_id)
        if u is None:
            return False
        m = _enc(session_id)
        with self._errors():
            sh = self._lua_delete(keys=[self._recprefix(u) + m, self._idx(u)], args=[self._recprefix(u), m, ""])
        if sh is None:
            return False
        sh = sh.decode()
        self._drop(self._id_ptr(session_id), self._secret_ptr(sh) if sh else "")
        return True

    def _delete_user(self, u: str, *, except_id: str | None, now: float | None) -> int:
        args = [self._recprefix(u), "" if except_id is None else _enc(except_id), "" if now is None else _num(now)]
        with self._errors():
            out = [x.decode() for x in self._lua_delete_user(keys=[self._idx(u)], args=args)]
        ptrs = []
        for sid, sh in zip(out[::2], out[1::2], strict=True):
            ptrs.append(self._id_ptr(sid))
            if sh:
                ptrs.append(self._secret_ptr(sh))
        for i in range(0, len(ptrs), 500):
            self._drop(*ptrs[i : i + 500])
        return len(out) // 2

    def delete_for_user(self, user_id: str, *, except_id: str | None = None) -> int:
        return self._delete_user(self._user(user_id), except_id=except_id, now=None)

    def _list_user(self, u: str, now: float) -> list[SessionRecord]:
        rows = self._read(lambda: self._lua_list(keys=[self._idx(u)], args=[self._recprefix(u)]))
        records = [r for r in map(_parse_record, rows) if r.is_live(now)]
        return sorted(records, key=lambda r: (-r.created_at, r.id))

    def list_for_user(self, user_id: str, *, now: float) -> list[SessionRecord]:
        return self._list_user(self._user(user_id), now)

    def _scan(self, suffix: str) -> list[str]:
        pattern = re.sub(r"([*?\[\]\\])", r"\\\1", self._p) + suffix
        return self._read(lambda: [k.decode() for k in self._client.scan_iter(match=pattern, count=1000)])

    def _users(self) -> list[str]:
        start = len(self._p) + 3  # P{u:
        return [k[start : -len("}:idx")] for k in self._scan("{u:*}:idx")]

    def list_all(self, *, now: float, limit: int = 1000) -> list[SessionRecord]:
        """Scans every user index (for the admin CLI, not for requests)."""
        records = [r for u in self._users() for r in self._list_user(u, now)]
        return sorted(records, key=lambda r: (-r.created_at, r.id))[:limit]

    # -- access-token denylist --------------------------------------------------------------
    def _deny_key(self, jti: str) -> str:
        return f"{self._p}d:{_enc(jti)}"

    def deny(self, jti: str, *, until: float, now: float) -> None:
        if until <= now:
            return
        with self._errors():
            self._lua_deny(keys=[self._deny_key(jti)], args=[_num(until), _ttl_ms(until, now)])

    def is_denied(self, jti: str, *, now: float) -> bool:
        v = self._read(lambda: self._client.get(self._deny_key(jti)))
        return v is not None and float(v) > now

    def list_denied(self, *, now: float) -> dict[str, float]:
        """Every denylist entry in force at `now` (jti -> until), for `CachedStore` to load when it
        (re)subscribes. Scans the key space: rare use only, never per request."""
        keys = self._scan("d:*")
        start = len(self._p) + 2
        out: dict[str, float] = {}
        for i in range(0, len(keys), 500):
            batch = keys[i : i + 500]

            def values(batch: list[str] = batch) -> list[Any]:
                pipe = self._client.pipeline(transaction=False)
                for key in batch:
                    pipe.get(key)
                return pipe.execute()  # type: ignore[no-any-return]

            for key, v in zip(batch, self._read(values), strict=True):
                if v is not None and float(v) > now:
                    out[_dec(key[start:])] = float(v)
        return out

    # -- per-user revocation epoch ----------------------------------------------------------
    def _epoch_key(self, user_id: str) -> str:
        return f"{self._p}e:{_enc(user_id)}"

    def get_epoch(self, user_id: str) -> int:
        v = self._read(lambda: self._client.get(self._epoch_key(user_id)))
        return int(v or 0)

    def bump_epoch(self, user_id: str) -> int:
        with self._errors():
            return int(self._client.incr(self._epoch_key(user_id)))

    # -- throttling counters ----------------------------------------------------------------
    def _throttle_key(self, key: str) -> str:
        return f"{self._p}{{t}}:{_enc(key)}"

    def throttle_read(self, keys: Sequence[str], *, now: float, window: float) -> list[ThrottleState]:
        """One pipeline of HMGETs (all keys in the `{t}` slot)."""

        def read() -> list[Any]:
            pipe = self._client.pipeline(transaction=False)
            for key in keys:
                pipe.hmget(self._throttle_key(key), ["f", "l"])
            return pipe.execute()  # type: ignore[no-any-return]

        out = []
        for f, last in self._read(read) if keys else []:
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
                time.sleep(random.uniform(0, 0.001 * 2 ** min(tries, 5)))  # contention backoff, not expiry
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
        """Redis TTLs already clean up; this also removes what is dead by the caller's clock."""
        n = sum(self._delete_user(u, except_id=None, now=now) for u in self._users())
        with self._errors():
            for suffix, field in (("d:*", ""), ("{t}:*", "x")):
                for key in self._scan(suffix):
                    n += int(self._lua_purge_one(keys=[key], args=[_num(now), field]))
        return n

    def ping(self) -> None:
        self._read(self._client.ping)

    def close(self) -> None:
        with contextlib.suppress(rex.RedisError, rex.RedisClusterException):
            self._client.close()


