"""The async local cache (the source the sync `CachedStore` is generated from): the store contract through
`aio_adapter`, and, natively on asyncio, what differs in kind from the sync flavour: the subscriber and the
denylist loader are tasks of the loop, and the cache holds no lock (its sections never await). Every rule of
`sessionward.stores.cache` is checked: invalidations across instances, the generation counter against a racing
fetch, health by PING send time, clearing on resubscribe, failing closed."""

from __future__ import annotations

import asyncio
import secrets
import signal
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest
import redis
import test_cache
from _services import start_redis_server
from aio_adapter import SyncFacade, on_private_loop
from contract import T0, make_record

from sessionward.aio.stores.cache import AsyncCachedStore
from sessionward.aio.stores.redis import AsyncRedisStore
from sessionward.exceptions import StoreUnavailable
from sessionward.ids import hash_secret, new_secret

pytestmark = pytest.mark.redis


class AsyncCounting:
    """A proxy counting the calls made to the inner async store. `hold` names a method that, once armed,
    waits after its read until `release` is set (another coroutine runs meanwhile)."""

    def __init__(self, inner: AsyncRedisStore) -> None:
        self.inner = inner
        self.calls: Counter[str] = Counter()
        self.hold: str | None = None
        self.fetched = asyncio.Event()
        self.release = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if not asyncio.iscoroutinefunction(attr):
            return attr

        async def call(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            result = await attr(*args, **kwargs)
            if name == self.hold:
                self.hold = None
                self.fetched.set()
                await asyncio.wait_for(self.release.wait(), 10)
            return result

        return call


async def acached(url: str, prefix: str, **options: Any) -> tuple[AsyncCachedStore, AsyncCounting]:
    inner = AsyncCounting(await AsyncRedisStore.from_url(url, prefix=prefix,
                                                         socket_timeout=options.pop("socket_timeout", 2.0)))
    store = AsyncCachedStore(inner, redis_client=inner.client, channel_prefix=prefix, **options)  # type: ignore[arg-type]
    store.start()
    assert await store.wait_healthy(5), "subscription did not come up"
    return store, inner


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 1.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.005)
    return await check()


def run(main: Callable[[], Awaitable[None]]) -> None:
    """Run `main()` on a fresh loop; no task may be left running when it returns (stores closed cleanly)."""

    async def checked() -> None:
        await main()
        me = asyncio.current_task()
        left = [t for t in asyncio.all_tasks() if t is not me and not t.done()]
        assert not left, f"tasks left running: {left}"

    asyncio.run(checked())


# -- the contract ---------------------------------------------------------------------------------------------
class TestAsyncCachedStore(test_cache.TestCachedStore):
    @pytest.fixture
    def store(self, redis_url: str, redis_prefix: str) -> Iterator[SyncFacade]:  # type: ignore[override]
        inspect_client = redis.Redis.from_url(redis_url)
        inspect = SimpleNamespace(client=inspect_client, _p=redis_prefix)  # what the key-level checks read
        try:
            with on_private_loop(lambda: _first(acached(redis_url, redis_prefix)), _inner=inspect) as facade:
                yield facade
        finally:
            inspect_client.close()


async def _first(pair: Awaitable[tuple[AsyncCachedStore, AsyncCounting]]) -> AsyncCachedStore:
    return (await pair)[0]


# -- no round trip while healthy; invalidations across instances ----------------------------------------------
def test_repeated_reads_hit_the_store_once(redis_url: str, redis_prefix: str) -> None:
    async def main() -> None:
        store, inner = await acached(redis_url, redis_prefix)
        try:
            secret = new_secret()
            session = make_record(secret=secret)
            family = make_record(kind="token", secret=None)
            await store.create(session, now=T0)
            await store.create(family, now=T0)
            for i in range(50):
                assert await store.load_by_secret(hash_secret(secret), now=T0 + i) == (session, 0)
                state = await store.token_state(jti=f"jti-{i % 3}", user_id="alice", family_id=family.id, now=T0 + i)
                assert (state.denied, state.epoch, state.family) == (False, 0, family)
                assert await store.get_epoch("alice") == 0
                assert await store.is_denied("other", now=T0 + i) is False
            assert inner.calls["load_by_secret"] == 1 and inner.calls["token_state"] == 1
            assert inner.calls["get_epoch"] == 0 and inner.calls["is_denied"] == 0
        finally:
            await store.close()

    run(main)


def test_writes_on_one_instance_flip_the_others_cached_answers(redis_url: str, redis_prefix: str) -> None:
    async def main() -> None:
        (a, _ia), (b, ib) = await acached(redis_url, redis_prefix), await acached(redis_url, redis_prefix)
        try:
            secret = new_secret()
            session = make_record(secret=secret)
            family = make_record(kind="token", secret=None)
            await a.create(session, now=T0)
            await a.create(family, now=T0)
            for _ in range(2):
                assert not (await b.token_state(jti="j1", user_id="alice", family_id=family.id, now=T0)).denied
                assert await b.load_by_secret(hash_secret(secret), now=T0) == (session, 0)
            assert ib.calls["token_state"] == 1 and ib.calls["load_by_secret"] == 1  # cached
            await a.deny("j1", until=T0 + 60, now=T0)
            assert await eventually(
                lambda: _denied(b.token_state(jti="j1", user_id="alice", family_id=family.id, now=T0 + 1)))
            await a.bump_epoch("alice")
            assert await eventually(lambda: _equals(b.load_by_secret(hash_secret(secret), now=T0), (session, 1)))
            await a.delete(session.id)
            assert await eventually(lambda: _equals(b.load_by_secret(hash_secret(secret), now=T0), (None, 0)))
            assert ib.calls["token_state"] == 1  # b learnt the denial from the message
        finally:
            await a.close()
            await b.close()

    run(main)


async def _denied(state: Awaitable[Any]) -> bool:
    return bool((await state).denied)


async def _equals(value: Awaitable[Any], expected: Any) -> bool:
    return bool(await value == expected)


# -- the generation counter: a fetch racing an invalidation never caches what it read -----------------------
@pytest.mark.parametrize("where", ["same instance", "other instance"])
def test_an_invalidation_during_a_fetch_is_not_overwritten(redis_url: str, redis_prefix: str, where: str) -> None:
    async def main() -> None:
        (a, ia), (b, _ib) = await acached(redis_url, redis_prefix), await acached(redis_url, redis_prefix)
        try:
            secret = new_secret()
            record = make_record(secret=secret)
            await a.create(record, now=T0)
            ia.hold = "load_by_secret"  # a's next fetch reads the record, then waits
            reader = asyncio.create_task(a.load_by_secret(hash_secret(secret), now=T0))
            await asyncio.wait_for(ia.fetched.wait(), 5)
            writer = a if where == "same instance" else b
            await writer.delete(record.id)
            await writer.deny("marker", until=T0 + 60, now=T0)  # published after the drop: once seen, both are
            assert await eventually(lambda: a.is_denied("marker", now=T0))
            ia.release.set()
            assert await reader == (record, 0)  # the fetch returns what it read ...
            assert await a.load_by_secret(hash_secret(secret), now=T0) == (None, 0)  # ... but did not cache it
            assert ia.calls["load_by_secret"] == 2
        finally:
            await a.close()
            await b.close()

    run(main)


# -- fail closed ----------------------------------------------------------------------------------------------
def test_late_heartbeat_stops_the_cache_at_once_and_resubscribing_clears_it(redis_url: str, redis_prefix: str) -> None:
    clock = test_cache.FakeMonotonic()

    async def main() -> None:
        store, inner = await acached(redis_url, redis_prefix, clock_for_heartbeat=clock, heartbeat_interval=0.5,
                                     heartbeat_timeout=2.0)
        try:
            secret = new_secret()
            record = make_record(secret=secret)
            await store.create(record, now=T0)
            assert await store.load_by_secret(hash_secret(secret), now=T0) == (record, 0)
            await inner.inner.client.delete(inner.inner._rec(record.id))  # behind the cache's back
            assert await store.load_by_secret(hash_secret(secret), now=T0) == (record, 0)  # stale, as a lost message
            clock.t += 2.5  # no pong for longer than heartbeat_timeout
            assert await store.load_by_secret(hash_secret(secret), now=T0) == (None, 0)  # straight from the store
            assert await store.wait_healthy(5)  # the subscriber starts over ...
            assert len(store._mem.records) == 0  # ... with an empty cache
        finally:
            await store.close()

    run(main)


def test_redis_down_means_store_unavailable_then_an_empty_cache_when_back() -> None:
    server = start_redis_server()
    prefix = f"swcache{secrets.token_hex(3)}:"

    async def main() -> None:
        store, inner = await acached(server.url, prefix, heartbeat_interval=0.2, heartbeat_timeout=1.0,
                                     socket_timeout=0.5)
        try:
            secret = new_secret()
            record = make_record(secret=secret)
            await store.create(record, now=T0)
            assert await store.load_by_secret(hash_secret(secret), now=T0) == (record, 0)
            server.stop()
            assert await eventually(lambda: _not_healthy(store), timeout=1.5)
            with pytest.raises(StoreUnavailable):
                await store.load_by_secret(hash_secret(secret), now=T0)
            with pytest.raises(StoreUnavailable):
                await store.get_epoch("alice")
            server.start()  # empty: nothing persisted
            assert await store.wait_healthy(10)
            assert await store.load_by_secret(hash_secret(secret), now=T0) == (None, 0)  # not the cached record
        finally:
            await store.close()

    try:
        run(main)
    finally:
        server.cleanup()


async def _not_healthy(store: AsyncCachedStore) -> bool:
    return not store.healthy


def test_a_frozen_redis_is_noticed_by_the_heartbeat() -> None:
    """The subscriber task never blocks the loop waiting on a silent server: the heartbeat ends the cache."""
    server = start_redis_server()

    async def main() -> None:
        store, _inner = await acached(server.url, "swcache:", heartbeat_interval=0.2, heartbeat_timeout=0.8,
                                      socket_timeout=0.3)
        try:
            family = make_record(kind="token", secret=None)
            await store.create(family, now=T0)
            assert (await store.token_state(jti="j", user_id="alice", family_id=family.id, now=T0)).family == family
            assert server.proc is not None
            server.proc.send_signal(signal.SIGSTOP)
            try:
                assert await eventually(lambda: _not_healthy(store), timeout=1.5)
                with pytest.raises(StoreUnavailable):
                    await store.token_state(jti="j", user_id="alice", family_id=family.id, now=T0)
            finally:
                server.proc.send_signal(signal.SIGCONT)
            assert await store.wait_healthy(10)
        finally:
            await store.close()

    try:
        run(main)
    finally:
        server.cleanup()


def test_a_write_whose_message_cannot_be_published_is_store_unavailable(redis_url: str, redis_prefix: str) -> None:
    server = start_redis_server()  # the invalidation channel lives here; the data in the shared Redis

    async def main() -> None:
        inner = await AsyncRedisStore.from_url(redis_url, prefix=redis_prefix)
        channel = await AsyncRedisStore.from_url(server.url, socket_timeout=0.5)
        store = AsyncCachedStore(inner, redis_client=channel.client, channel_prefix=redis_prefix).start()
        try:
            assert await store.wait_healthy(5)
            server.stop()
            with pytest.raises(StoreUnavailable):
                await store.deny("j", until=T0 + 60, now=T0)
            assert await inner.is_denied("j", now=T0)  # the write itself happened
        finally:
            await store.close()
            await channel.close()

    try:
        run(main)
    finally:
        server.cleanup()


# -- the denylist loader task -----------------------------------------------------------------------------------
def test_the_denylist_is_loaded_on_start_and_resynced(redis_url: str, redis_prefix: str) -> None:
    async def main() -> None:
        plain = await AsyncRedisStore.from_url(redis_url, prefix=redis_prefix)
        await plain.deny("before", until=T0 + 60, now=T0)  # written without the cache: no message
        store, inner = await acached(redis_url, redis_prefix, resync_interval=0.2)
        try:
            assert store.denylist_complete
            assert await store.is_denied("before", now=T0) and not await store.is_denied("quiet", now=T0)
            await plain.deny("quiet", until=T0 + 60, now=T0)
            assert await eventually(lambda: store.is_denied("quiet", now=T0), timeout=2.0)
            assert inner.calls["is_denied"] == 0
        finally:
            await plain.close()
            await store.close()

    run(main)


def test_close_ends_both_tasks_even_while_they_wait(redis_url: str, redis_prefix: str) -> None:
    async def main() -> None:
        store, _inner = await acached(redis_url, redis_prefix, resync_interval=3600)
        names = {t.get_name() for t in asyncio.all_tasks()}
        assert {"sessionward-cache-sub", "sessionward-cache-deny"} <= names
        await store.close()
        assert not store.healthy

    run(main)
