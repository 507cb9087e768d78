"""The async Redis store (the source the sync one is generated from): the same contract and Redis-specific tests
as the sync store, through `aio_adapter` (standalone, Cluster, Sentinel), plus TLS, unix socket, failures and
native asyncio bursts."""

from __future__ import annotations

import asyncio
import secrets
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio
import redis.asyncio.connection
import test_redis
from _services import free_port, missing_service, start_redis_server
from aio_adapter import SyncFacade, on_private_loop
from contract import T0, every_method, make_record

from sessionward.aio.stores import open_async_store
from sessionward.aio.stores.redis import AsyncRedisStore, make_client
from sessionward.exceptions import ConfigError, StoreUnavailable
from sessionward.stores import redis as sync_redis
from sessionward.stores.base import ThrottleState

pytestmark = pytest.mark.redis


def _facade(url: str, prefix: str) -> Iterator[SyncFacade]:
    inspect_client = sync_redis.make_client(url)  # a sync client on the same data, for the key-level checks
    try:
        with on_private_loop(lambda: AsyncRedisStore.from_url(url, prefix=prefix), client=inspect_client) as facade:
            yield facade
    finally:
        inspect_client.close()


class TestAsyncRedisStore(test_redis.TestRedisStore):
    """Every contract, layout, TTL and key-shape test of the sync store, on the async one."""

    @pytest.fixture
    def store(self, redis_url: str, redis_prefix: str) -> Iterator[SyncFacade]:  # type: ignore[override]
        yield from _facade(redis_url, redis_prefix)


class TestAsyncRedisClusterStore(test_redis.TestRedisClusterStore):
    @pytest.fixture
    def store(self, cluster_url: str) -> Iterator[SyncFacade]:  # type: ignore[override]
        yield from _facade(cluster_url, f"swtest:{secrets.token_hex(4)}:")

    def test_the_async_cluster_client_does_not_retry_writes(self, store: SyncFacade) -> None:
        client = store.target.client
        assert type(client).__module__ == "redis.asyncio.cluster"
        assert client.retry.get_retries() == 0


class TestAsyncRedisSentinelStore(test_redis.TestRedisSentinelStore):
    @pytest.fixture
    def store(self, sentinel_url: str) -> Iterator[SyncFacade]:  # type: ignore[override]
        yield from _facade(sentinel_url, f"swtest:{secrets.token_hex(4)}:")

    def test_the_async_client_goes_through_sentinel(self, store: SyncFacade) -> None:
        pool = store.target.client.connection_pool
        assert type(pool).__module__ == "redis.asyncio.sentinel" and type(pool).__name__ == "SentinelConnectionPool"
        assert pool.connection_kwargs["retry"].get_retries() == 0


# -- clients and URLs ---------------------------------------------------------------------------------


def test_async_clients_for_redis_rediss_and_unix_urls() -> None:
    async def main() -> None:
        c = await make_client("redis://:pw@example.invalid:6390/3", socket_timeout=1.5)
        kw = c.connection_pool.connection_kwargs
        assert (kw["host"], kw["port"], kw["db"], kw["password"], kw["socket_timeout"]) == ("example.invalid", 6390,
                                                                                             3, "pw", 1.5)
        assert c.get_retry().get_retries() == 0  # no hidden retries of writes
        tls = await make_client("rediss://example.invalid:6380/0")
        assert tls.connection_pool.connection_class is redis.asyncio.connection.SSLConnection
        unix = await make_client("unix:///run/redis/redis.sock?db=4")
        assert unix.connection_pool.connection_class is redis.asyncio.connection.UnixDomainSocketConnection
        assert unix.connection_pool.connection_kwargs["path"] == "/run/redis/redis.sock"
        sentinel = await make_client("redis+sentinel://s1:26379,s2:26379/mymaster/1")
        assert sentinel.connection_pool.service_name == "mymaster"
        for client in (c, tls, unix, sentinel):
            await client.aclose()
        with pytest.raises(ConfigError):
            AsyncRedisStore(c, prefix="sw:{x}:")

    asyncio.run(main())


def test_open_async_store_picks_by_scheme_and_refuses_what_open_store_refuses(tmp_path: Path, redis_url: str,
                                                                               redis_prefix: str) -> None:
    from sessionward.aio.stores.cache import AsyncCachedStore
    from sessionward.aio.stores.sql import AsyncSQLStore

    async def main() -> None:
        store = await open_async_store(redis_url, prefix=redis_prefix)
        assert isinstance(store, AsyncRedisStore)
        await store.ping()
        await store.close()
        publishing = await open_async_store(redis_url, prefix=redis_prefix, publish_invalidations=True)
        assert isinstance(publishing, AsyncCachedStore) and not publishing.healthy  # publishes, caches nothing
        await publishing.close()
        sql = await open_async_store(f"sqlite:///{tmp_path / 'x.db'}", publish_invalidations=True)
        assert isinstance(sql, AsyncSQLStore)
        await sql.close()
        with pytest.raises(ConfigError):
            await open_async_store(f"sqlite:///{tmp_path / 'y.db'}", local_cache=True)
        for bad in ("memcached://x", "redis+cluster://", "nonsense"):
            with pytest.raises(ConfigError):
                await open_async_store(bad)

    asyncio.run(main())


# -- failures ---------------------------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_redis_raises_store_unavailable_everywhere() -> None:
    async def main() -> None:
        store = await AsyncRedisStore.from_url(f"redis://127.0.0.1:{_closed_port()}/0", socket_connect_timeout=0.5)
        for call in every_method(store):  # type: ignore[arg-type]  # each call returns a coroutine here
            with pytest.raises(StoreUnavailable):
                await call()
        await store.close()
        with pytest.raises(StoreUnavailable):
            await AsyncRedisStore.from_url(f"redis+cluster://127.0.0.1:{_closed_port()}", socket_connect_timeout=0.5)
        sentinel = await AsyncRedisStore.from_url(f"redis+sentinel://127.0.0.1:{_closed_port()}/m",
                                                  socket_connect_timeout=0.5)
        with pytest.raises(StoreUnavailable):
            await sentinel.get("x", now=T0)
        await sentinel.close()

    asyncio.run(main())


def test_async_store_recovers_when_redis_comes_back() -> None:
    server = start_redis_server()

    async def main() -> None:
        store = await AsyncRedisStore.from_url(server.url, socket_connect_timeout=0.5, socket_timeout=0.5)
        rec = make_record()
        await store.create(rec, now=T0)
        server.stop()
        for call in every_method(store):  # type: ignore[arg-type]
            with pytest.raises(StoreUnavailable):
                await call()
        server.start()  # empty: nothing was persisted
        assert await store.get(rec.id, now=T0) is None
        await store.create(rec, now=T0)
        assert await store.get(rec.id, now=T0) == rec
        await store.close()

    try:
        asyncio.run(main())
    finally:
        server.cleanup()


def test_rediss_with_tls_and_certificate_verification(tmp_path: Path) -> None:
    ca, cert, key = test_redis._write_tls_files(tmp_path)
    tls_port = free_port()
    try:
        server = start_redis_server(extra_args=["--tls-port", str(tls_port), "--tls-cert-file", str(cert),
                                                "--tls-key-file", str(key), "--tls-ca-cert-file", str(ca),
                                                "--tls-auth-clients", "no"])
    except RuntimeError as exc:
        missing_service(f"redis-server without TLS support: {exc}")

    async def main() -> None:
        store = await AsyncRedisStore.from_url(f"rediss://localhost:{tls_port}/0", ssl_ca_certs=str(ca))
        rec = make_record()
        await store.create(rec, now=T0)
        assert await store.get(rec.id, now=T0) == rec
        await store.close()
        # without our CA the server's certificate is refused: fail closed, not "connect anyway"
        untrusted = await AsyncRedisStore.from_url(f"rediss://localhost:{tls_port}/0", socket_connect_timeout=1)
        with pytest.raises(StoreUnavailable):
            await untrusted.ping()
        await untrusted.close()

    try:
        asyncio.run(main())
    finally:
        server.cleanup()


def test_unix_socket(tmp_path: Path) -> None:
    path = tmp_path / "redis.sock"
    server = start_redis_server(extra_args=["--unixsocket", str(path), "--unixsocketperm", "700"])

    async def main() -> None:
        store = await AsyncRedisStore.from_url(f"unix://{path}?db=1")
        rec = make_record()
        await store.create(rec, now=T0)
        assert await store.get(rec.id, now=T0) == rec
        await store.close()

    try:
        asyncio.run(main())
        import redis as sync_client

        assert sync_client.Redis(unix_socket_path=str(path), db=1).dbsize() > 0
    finally:
        server.cleanup()


# -- native asyncio bursts ----------------------------------------------------------------------------


@pytest.fixture(params=["standalone", "cluster"])
def burst_store_url(request: pytest.FixtureRequest, redis_url: str) -> str:
    return redis_url if request.param == "standalone" else str(request.getfixturevalue("cluster_url"))


def test_burst_advance_has_exactly_one_winner(burst_store_url: str) -> None:
    async def main() -> None:
        store = await AsyncRedisStore.from_url(burst_store_url, prefix=f"swtest:{secrets.token_hex(4)}:")
        try:
            for _round in range(3):
                fam = make_record(kind="token", secret=None)
                await store.create(fam, now=T0)
                results = await asyncio.gather(*(
                    store.advance(fam.id, expected_generation=0, last_seen=T0 + i, idle_expires_at=T0 + 500 + i,
                                  now=T0 + 1)
                    for i in range(40)
                ))
                assert results.count(True) == 1
                got = await store.get(fam.id, now=T0 + 1)
                assert got is not None and got.generation == 1 and got.last_seen == T0 + results.index(True)
                await store.delete(fam.id)
        finally:
            await store.close()

    asyncio.run(main())


def test_burst_throttle_update_loses_no_count_and_bump_epoch_is_atomic(burst_store_url: str) -> None:
    cap = 25

    def bump(states: list[ThrottleState]) -> list[ThrottleState] | None:
        if states[0].failures >= cap:
            return None
        return [ThrottleState(s.failures + 1, T0 + 2) for s in states]

    async def main() -> None:
        prefix = f"swtest:{secrets.token_hex(4)}:"
        store = await AsyncRedisStore.from_url(burst_store_url, prefix=prefix)
        try:
            results: list[Any] = await asyncio.gather(*(
                store.throttle_update(["hot", f"own{i}"], bump, now=T0 + 2, window=600) for i in range(40)
            ))
            taken = sorted(states[0].failures for states, new in results if new is not None)
            assert taken == list(range(cap))  # every count taken once, none lost, the cap held
            assert await store.throttle_read(["hot"], now=T0 + 3, window=600) == [ThrottleState(cap, T0 + 2)]
            owns = await store.throttle_read([f"own{i}" for i in range(40)], now=T0 + 3, window=600)
            assert sum(s.failures for s in owns) == cap  # all keys of an update, or none
            epochs = await asyncio.gather(*(store.bump_epoch("carol") for _ in range(30)))
            assert sorted(epochs) == list(range(1, 31))
            await store.throttle_reset("hot", *(f"own{i}" for i in range(40)))
            await store.client.delete(f"{prefix}e:carol")
        finally:
            await store.close()

    asyncio.run(main())
