"""A bounded in-process cache in front of a store, kept current by Redis pub/sub (no round trip per request).

`CachedStore` wraps a store (normally a `RedisStore`) and answers the per-request reads -- `load_by_secret`,
`token_state`, `get_epoch`, `is_denied` -- from memory; every other method goes to the inner store.

How it stays current. Every write is published as a JSON message on one channel (``<prefix>inval``):
``["deny", jti, until]``, ``["epoch", user, value]``, ``["drop", session_id]`` (update, advance, replace,
delete, and each record of a delete_for_user) and ``["user", user_id]``. When the inner store is a
`RedisStore` on the same client, its Lua scripts publish the message themselves, in the same atomic step as
the write, so a writer that dies between its write and its message cannot leave another instance's cache
stale; otherwise the message is published here after the inner store accepted the write. Either way the
write is also applied to this instance's cache at once. Every instance subscribes (its own messages
included) and applies them. Nothing "not found" is cached, so `create` needs no message.

The window. Another instance stops answering from its cache when its subscriber has read the message: a few
milliseconds under load (measured by `python -m bench --only cache_window`; see README, Deployment).

The denylist is answered locally only while the cache knows every denial: after each (re)subscription
the loader thread reads the live denylist (`inner.list_denied(now=...)`, if the inner store has it) and
merges it with the messages received meanwhile; it repeats every `resync_interval` (a denial written by
a process without the cache is picked up then). Until that load is done, or while the denylist is larger
than `max_entries`, or if the inner store has no `list_denied`, a jti not in the cache costs one round trip.

Races. A read-through remembers the generation counter (moved by every message, local write and reset)
before it asks the inner store and inserts what it got only if the counter has not moved, so a value made
stale by an invalidation during the fetch is never cached.

Fail closed. The cache is used only while the subscription is healthy: subscribed, and a PING on the pubsub
connection, sent no more than `heartbeat_timeout` ago, answered. A PING carries its send time and is answered
in order after every message published before it, so "the newest answered PING was sent at T" means "every
invalidation published before T has been applied": a subscriber that keeps answering but lags behind a flood
of messages is unhealthy once its lag passes `heartbeat_timeout`, so no revocation is served stale for longer.
When the subscription drops, a heartbeat is late or the
pubsub connection reconnects behind our back, the cache is cleared and every read goes to the inner store
(which raises `StoreUnavailable` when Redis is down). When it is back, the cache is cleared again (messages
were missed) and fills from scratch. A write whose message cannot be published raises `StoreUnavailable`
(the write itself happened; the caller answers 503 and the client may retry).

Bounds: at most `max_entries` records and `max_entries` epochs (least recently used go first), each at most
`max_age` seconds old; a cached record is still checked against the caller's `now` (and a record that
reads as expired is asked of the inner store again, never answered "gone" from memory). Denylist entries
end at their `until`. Records handed out are shared: callers must not mutate `record.data`.

Flavours. `AsyncCachedStore` (asyncio) and `CachedStore` (sync) are generated from one source; the subscriber
and the denylist loader are asyncio tasks in the one and daemon threads in the other (`_flavour`). The async
flavour needs no lock: its locked sections never await, so nothing runs between their steps.
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import redis.exceptions as rex

from sessionward.aio.stores._flavour import Event, Lock, Worker, sleep, start_worker, stop_worker
from sessionward.aio.stores.protocol import AsyncSessionStore
from sessionward.exceptions import StoreUnavailable
from sessionward.stores._memory import DENY_GRACE, Memory
from sessionward.stores.base import SessionRecord, ThrottleDecision, ThrottleState, TokenState

__all__ = ["AsyncCachedStore"]

_log = logging.getLogger("sessionward.stores.cache")
_REDIS_ERRORS = (rex.RedisError, rex.RedisClusterException)
_PUBLISH_ATTEMPTS = 2


class _Unhealthy(Exception):
    """The subscription can no longer be trusted (heartbeat late, silent reconnect, bad message)."""


class AsyncCachedStore:
    """A session store that answers per-request reads from a local cache kept current by Redis pub/sub
    (`AsyncCachedStore` for asyncio, `CachedStore` sync).

    `redis_client` is the client the inner store uses (for PUBLISH and the pubsub connection);
    `clock_for_heartbeat` a monotonic clock in seconds (default `time.monotonic`). Call `start()` once (async:
    from a coroutine, on the loop that will use the store); until the subscription is up every read goes to the
    inner store. Raises `ValueError` for bad bounds."""

    def __init__(
        self,
        inner: AsyncSessionStore,
        *,
        redis_client: Any,
        channel_prefix: str,
        clock_for_heartbeat: Callable[[], float] | None = None,
        max_entries: int = 100_000,
        max_age: float = 60.0,
        heartbeat_interval: float = 0.5,
        heartbeat_timeout: float = 2.0,
        resync_interval: float | None = None,
    ) -> None:
        if max_entries < 1 or max_age <= 0:
            raise ValueError("max_entries must be >= 1 and max_age > 0")
        if not 0 < heartbeat_interval < heartbeat_timeout:
            raise ValueError("need 0 < heartbeat_interval < heartbeat_timeout")
        self._inner = inner
        self._client = redis_client
        self.channel = f"{channel_prefix}inval"
        self._mono = clock_for_heartbeat or time.monotonic
        self._hb_interval = float(heartbeat_interval)
        self._hb_timeout = float(heartbeat_timeout)
        self._resync = float(resync_interval if resync_interval is not None else max_age)
        self._list_denied: Callable[..., Any] | None = getattr(inner, "list_denied", None)
        # a RedisStore on this very client publishes from its write scripts (same server as our subscription)
        hook = getattr(inner, "publish_invalidations_to", None)
        self._inner_publishes = hook is not None and getattr(inner, "client", None) is redis_client
        if self._inner_publishes:
            hook(self.channel)  # type: ignore[misc]

        self._lock = Lock()
        self._gen = 0  # moved by every invalidation and reset (see `_insert_ok`)
        self._live = False  # a subscription is established ...
        self._last_pong = 0.0  # ... and the newest PING answered was sent at this time (`_mono`)
        self._ping_token = "sw-cache-" + secrets.token_hex(4)
        self._session = 0  # counts subscriptions, so a stale denylist load is dropped
        self._mem = Memory(max_entries=max_entries, max_age=float(max_age))

        self._stop = Event()
        self._load_wanted = Event()
        self._reconnected = False
        self._workers: list[Worker] = []

    # -- life cycle -----------------------------------------------------------------------------
    def start(self) -> AsyncCachedStore:
        """Start the subscriber and the denylist loader (sync: daemon threads; async: tasks). Returns self;
        never raises."""
        if not self._workers:
            for target, name in ((self._listen, "sessionward-cache-sub"), (self._loader, "sessionward-cache-deny")):
                self._workers.append(start_worker(target, name))
        return self

    async def close(self) -> None:
        """Stop the subscriber and the loader, forget the cache and close the inner store."""
        self._stop.set()
        self._load_wanted.set()
        for worker in self._workers:
            await stop_worker(worker, 5)
        self._reset(live=False)
        await self._inner.close()

    @property
    def healthy(self) -> bool:
        """True while the cache may answer reads (subscribed, heartbeat fresh)."""
        return self._healthy(self._mono())

    @property
    def denylist_complete(self) -> bool:
        """True while `is_denied` can answer "not denied" without the inner store."""
        return self._mem.deny_complete and self.healthy

    async def wait_healthy(self, timeout: float = 5.0) -> bool:
        """Block until the cache is usable (and the denylist loaded, if the inner store can list it)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.healthy and (self._mem.deny_complete or self._list_denied is None):
                return True
            await sleep(0.01)
        return False

    # -- cached reads ---------------------------------------------------------------------------
    async def load_by_secret(self, secret_hash: str, *, now: float) -> tuple[SessionRecord | None, int]:
        t = self._mono()
        with self._lock:
            g = self._begin_read(now, t)
            if g is not None:
                record = self._mem.record_by_secret(secret_hash, now, t)
                if record is not None:
                    epoch = self._mem.epoch(record.user_id, t)
                    if epoch is not None:
                        return record, epoch
        record, epoch = await self._inner.load_by_secret(secret_hash, now=now)
        if g is not None and record is not None:
            with self._lock:
                if self._insert_ok(g):
                    self._mem.put_record(record, t)
                    self._mem.put_epoch(record.user_id, epoch, t)
        return record, epoch

    async def token_state(self, *, jti: str, user_id: str, family_id: str, now: float) -> TokenState:
        t = self._mono()
        with self._lock:
            g = self._begin_read(now, t)
            if g is not None:
                denied = self._mem.is_denied(jti, now)
                epoch = self._mem.epoch(user_id, t)
                family = self._mem.record(family_id, now, t)
                if denied is not None and epoch is not None and family is not None and family.user_id == user_id:
                    return TokenState(denied=denied, epoch=epoch, family=family)
        state = await self._inner.token_state(jti=jti, user_id=user_id, family_id=family_id, now=now)
        if g is not None:
            with self._lock:
                if self._insert_ok(g):
                    self._mem.put_epoch(user_id, state.epoch, t)
                    if state.family is not None:
                        self._mem.put_record(state.family, t)
        return state

    async def get_epoch(self, user_id: str) -> int:
        t = self._mono()
        with self._lock:
            g = self._begin_read(None, t)
            if g is not None:
                epoch = self._mem.epoch(user_id, t)
                if epoch is not None:
                    return epoch
        epoch = await self._inner.get_epoch(user_id)
        if g is not None:
            with self._lock:
                if self._insert_ok(g):
                    self._mem.put_epoch(user_id, epoch, t)
        return epoch

    async def is_denied(self, jti: str, *, now: float) -> bool:
        with self._lock:
            if self._begin_read(now, self._mono()) is not None:
                denied = self._mem.is_denied(jti, now)
                if denied is not None:
                    return denied
        return await self._inner.is_denied(jti, now=now)

    # -- writes: inner store first, then the invalidation ------------------------------------------
    async def create(self, record: SessionRecord, *, now: float) -> None:
        await self._inner.create(record, now=now)  # nothing "not found" is cached: no message needed

    async def update(self, session_id: str, changes: Mapping[str, Any], *, now: float) -> bool:
        ok = await self._inner.update(session_id, changes, now=now)
        if ok:
            await self._announce(["drop", session_id])
        return ok

    async def replace(self, old_id: str, new: SessionRecord, *, now: float) -> bool:
        ok = await self._inner.replace(old_id, new, now=now)
        if ok:
            await self._announce(["drop", old_id])
        return ok

    async def advance(
        self, session_id: str, *, expected_generation: int, last_seen: float, idle_expires_at: float, now: float
    ) -> bool:
        ok = await self._inner.advance(
            session_id, expected_generation=expected_generation, last_seen=last_seen,
            idle_expires_at=idle_expires_at, now=now,
        )
        if ok:
            await self._announce(["drop", session_id])
        return ok

    async def delete(self, session_id: str) -> bool:
        ok = await self._inner.delete(session_id)
        await self._announce(["drop", session_id])  # even if already gone: a drop is always safe
        return ok

    async def delete_for_user(self, user_id: str, *, except_id: str | None = None) -> int:
        n = await self._inner.delete_for_user(user_id, except_id=except_id)
        await self._announce(["user", user_id])
        return n

    async def deny(self, jti: str, *, until: float, now: float) -> None:
        await self._inner.deny(jti, until=until, now=now)
        if until > now:
            await self._announce(["deny", jti, float(until)])

    async def bump_epoch(self, user_id: str) -> int:
        value = await self._inner.bump_epoch(user_id)
        await self._announce(["epoch", user_id, int(value)])
        return value

    # -- passed through -----------------------------------------------------------------------------
    async def get(self, session_id: str, *, now: float) -> SessionRecord | None:
        return await self._inner.get(session_id, now=now)

    async def get_by_secret(self, secret_hash: str, *, now: float) -> SessionRecord | None:
        return await self._inner.get_by_secret(secret_hash, now=now)

    async def list_for_user(self, user_id: str, *, now: float) -> list[SessionRecord]:
        return await self._inner.list_for_user(user_id, now=now)

    async def list_all(self, *, now: float, limit: int = 1000) -> list[SessionRecord]:
        return await self._inner.list_all(now=now, limit=limit)

    async def use_once(self, key: str, *, until: float, now: float) -> bool:
        return await self._inner.use_once(key, until=until, now=now)  # never cached: the use is shared

    # Throttle counters are never cached: every read and update goes straight to the inner store,
    # so the count stays atomic across every instance (a cached counter would let each instance's
    # requests pass on a stale count).
    async def throttle_read(self, keys: Sequence[str], *, now: float, window: float) -> list[ThrottleState]:
        return await self._inner.throttle_read(keys, now=now, window=window)

    async def throttle_update(
        self, keys: Sequence[str], decide: ThrottleDecision, *, now: float, window: float
    ) -> tuple[list[ThrottleState], list[ThrottleState] | None]:
        return await self._inner.throttle_update(keys, decide, now=now, window=window)

    async def throttle_reset(self, *keys: str) -> None:
        await self._inner.throttle_reset(*keys)

    async def purge_expired(self, *, now: float) -> int:
        return await self._inner.purge_expired(now=now)  # only what is dead by `now`, which no cache hit returns

    async def ping(self) -> None:
        await self._inner.ping()

    # -- health and generations (call with the lock held) ----------------------------------------------
    def _healthy(self, t: float) -> bool:
        return self._live and t - self._last_pong <= self._hb_timeout

    def _begin_read(self, now: float | None, t: float) -> int | None:
        """The generation to insert under, or None if the cache must not be used now."""
        if now is not None:
            self._mem.saw(now)
        return self._gen if self._healthy(t) else None

    def _insert_ok(self, g: int) -> bool:
        return self._gen == g and self._healthy(self._mono())

    def _apply(self, message: Any) -> None:
        """Apply one invalidation. Raises `_Unhealthy` for a message it cannot read."""
        self._gen += 1
        try:
            self._mem.apply(message)
        except ValueError as exc:
            raise _Unhealthy("unreadable invalidation message") from exc

    def _reset(self, *, live: bool) -> None:
        """Forget everything (messages may have been missed); `live` says whether the cache may refill."""
        with self._lock:
            self._gen += 1
            self._session += 1
            self._live = live
            self._last_pong = self._mono()
            self._mem.clear()
        if live:
            self._load_wanted.set()

    async def _announce(self, message: list[Any]) -> None:
        """Apply a write's invalidation here at once, then publish it. Raises `StoreUnavailable` if it cannot
        be published (other instances would keep a stale answer)."""
        with self._lock, contextlib.suppress(_Unhealthy):  # our own messages are well-formed
            self._apply(message)
        if self._inner_publishes:
            return
        payload = json.dumps(message, separators=(",", ":"))
        for attempt in range(1, _PUBLISH_ATTEMPTS + 1):
            try:
                await self._client.publish(self.channel, payload)
                return
            except _REDIS_ERRORS as exc:
                if attempt == _PUBLISH_ATTEMPTS:
                    raise StoreUnavailable(f"Redis unavailable: cannot publish an invalidation "
                                           f"({type(exc).__name__})") from exc

    # -- the subscriber -------------------------------------------------------------------------------
    def _on_pubsub_reconnect(self, _connection: Any) -> None:
        self._reconnected = True  # redis-py re-subscribed behind our back: messages may be lost

    async def _listen(self) -> None:
        backoff = 0.05
        while not self._stop.is_set():
            pubsub = None
            try:
                pubsub = self._client.pubsub()
                await pubsub.subscribe(self.channel)
                await self._await_subscribed(pubsub)
                self._reconnected = False
                pubsub.connection.register_connect_callback(self._on_pubsub_reconnect)
                self._reset(live=True)
                _log.info("invalidation subscription up; local cache in use")
                backoff = 0.05
                next_ping = self._mono()
                while not self._stop.is_set():
                    t = self._mono()
                    if t - self._last_pong > self._hb_timeout:
                        raise _Unhealthy("heartbeat late")
                    if t >= next_ping:
                        await pubsub.ping(f"{self._ping_token} {t!r}")  # the pong says when it was sent
                        next_ping = t + self._hb_interval
                    msg = await pubsub.get_message(timeout=min(0.1, self._hb_interval))
                    if self._reconnected:
                        raise _Unhealthy("pubsub reconnected")
                    if msg is not None:
                        self._handle(msg)
            except Exception as exc:  # noqa: BLE001 - any failure means: stop trusting the cache
                if not self._stop.is_set():
                    _log.warning("invalidation subscription down (%s); reads go to the store", type(exc).__name__)
            finally:
                self._reset(live=False)
                if pubsub is not None:
                    with contextlib.suppress(Exception):
                        if pubsub.connection is not None:
                            pubsub.connection.deregister_connect_callback(self._on_pubsub_reconnect)
                        await pubsub.aclose()
            await self._stop.wait(backoff)
            backoff = min(backoff * 2, 1.0)

    async def _await_subscribed(self, pubsub: Any) -> None:
        start = self._mono()
        while not self._stop.is_set():
            msg = await pubsub.get_message(timeout=0.1)
            if msg is not None and msg.get("type") == "subscribe":
                return
            if self._mono() - start > self._hb_timeout:
                raise _Unhealthy("no subscribe confirmation")

    def _handle(self, msg: Mapping[str, Any]) -> None:
        kind = msg.get("type")
        if kind == "pong":
            sent = self._ping_sent_at(msg.get("data"))
            t = self._mono()
            with self._lock:
                if t - self._last_pong > self._hb_timeout:
                    raise _Unhealthy("heartbeat late")
                if sent is not None and sent > self._last_pong:
                    self._last_pong = sent  # every message published before `sent` has been applied
        elif kind == "message":
            try:
                message = json.loads(msg["data"])
            except (ValueError, TypeError) as exc:
                raise _Unhealthy("unreadable invalidation message") from exc
            with self._lock:
                self._apply(message)
        elif kind in ("unsubscribe", "punsubscribe"):
            raise _Unhealthy("unsubscribed")

    def _ping_sent_at(self, data: Any) -> float | None:
        """The send time carried by one of our PINGs' answers; None for anything else."""
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)
        token, _, sent = text.partition(" ")
        if token != self._ping_token:
            return None
        try:
            return float(sent)
        except ValueError:
            return None

    # -- the denylist loader ----------------------------------------------------------------------------
    async def _loader(self) -> None:
        while not self._stop.is_set():
            await self._load_wanted.wait(timeout=self._resync)
            self._load_wanted.clear()
            if self._stop.is_set() or self._list_denied is None:
                continue
            with self._lock:
                if not self._live:
                    continue
                session, now = self._session, self._mem.last_now - DENY_GRACE
            try:
                snapshot = dict(await self._list_denied(now=now))
            except Exception as exc:  # noqa: BLE001 - retried soon; until then misses ask the store
                _log.warning("cannot load the denylist (%s); retrying", type(exc).__name__)
                await self._stop.wait(0.2)
                self._load_wanted.set()
                continue
            with self._lock:
                if session != self._session:  # reset meanwhile: the next session loads again
                    continue
                self._mem.merge_denied(snapshot)
