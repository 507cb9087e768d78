"""No async store operation blocks the event loop, checked the way asyncio itself reports it: in debug mode
with `slow_callback_duration` = 0.05 s, asyncio logs "Executing <callback> took N seconds" for any step of the
loop that ran longer; the test fails on any such report.

A blocking call on a fast local server would take well under 0.05 s and go unseen, so every operation runs while
the backend is stalled for `STALL` seconds by another client: Redis paused (`CLIENT PAUSE`, on a private server),
PostgreSQL tables locked (`LOCK TABLE ... ACCESS EXCLUSIVE`), the SQLite database write-locked (`BEGIN IMMEDIATE`;
SQLite's reads never wait in WAL mode, and run on the store's worker thread anyway). An operation that waited on
the loop instead of awaiting would be reported as a callback of about `STALL` seconds. One rerun is allowed, so
that a machine too busy to schedule the loop for 50 ms does not fail the test; a real blocking call fails both.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from _services import start_redis_server
from contract import T0, make_record

from sessionward.aio.stores.cache import AsyncCachedStore
from sessionward.aio.stores.redis import AsyncRedisStore
from sessionward.aio.stores.sql import AsyncSQLStore
from sessionward.stores.base import ThrottleState

STALL = 0.2
SLOW = 0.05
TABLES = "sw_sessions, sw_denylist, sw_epochs, sw_throttle"

Stall = Callable[[], contextlib.AbstractAsyncContextManager[None]]
Op = tuple[str, Callable[[], Awaitable[Any]]]


class SlowCallbacks(logging.Handler):
    """Collects asyncio's debug-mode reports of loop steps that took longer than `slow_callback_duration`."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.reports: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("Executing") and " took " in message:
            self.reports.append(message)


@pytest.fixture
def slow_callbacks() -> Iterator[SlowCallbacks]:
    handler = SlowCallbacks()
    logger = logging.getLogger("asyncio")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def run_in_debug_mode(main: Callable[[], Awaitable[None]]) -> None:
    async def debug_main() -> None:
        asyncio.get_running_loop().slow_callback_duration = SLOW
        await main()

    asyncio.run(debug_main(), debug=True)


async def check_never_blocks(ops: list[Op], stall: Stall, seen: SlowCallbacks) -> None:
    blocked: dict[str, list[str]] = {}
    for name, op in ops:
        for _attempt in range(2):
            seen.reports.clear()
            async with stall():
                await op()
            if not seen.reports:
                blocked.pop(name, None)
                break
            blocked[name] = list(seen.reports)
    assert not blocked, f"operations that blocked the event loop: {blocked}"


def _holding(acquire: Callable[[], Callable[[], None]]) -> Stall:
    """A stall: a thread takes the backend with `acquire()` (returning its release), holds it `STALL` s."""

    @contextlib.asynccontextmanager
    async def stall() -> AsyncIterator[None]:
        held, done = threading.Event(), threading.Event()

        def hold() -> None:
            release = acquire()
            held.set()
            time.sleep(STALL)
            release()
            done.set()

        threading.Thread(target=hold, daemon=True).start()
        assert await asyncio.to_thread(held.wait, 10)
        try:
            yield
        finally:
            await asyncio.to_thread(done.wait, 10)

    return stall


async def every_operation(store: Any) -> list[Op]:
    """One call of every store method (the records they need are written first, unmeasured)."""
    rec, old, victim = make_record(), make_record(), make_record(user_id="bob")
    fam = make_record(kind="token", secret=None)
    for r in (rec, old, victim, fam):
        await store.create(r, now=T0)

    def bump(states: list[ThrottleState]) -> list[ThrottleState]:
        return [ThrottleState(s.failures + 1, T0) for s in states]

    return [
        ("create", lambda: store.create(make_record(), now=T0)),
        ("get", lambda: store.get(rec.id, now=T0)),
        ("get_by_secret", lambda: store.get_by_secret(rec.secret_hash, now=T0)),
        ("load_by_secret", lambda: store.load_by_secret(rec.secret_hash, now=T0)),
        ("token_state", lambda: store.token_state(jti="j", user_id="alice", family_id=fam.id, now=T0)),
        ("update", lambda: store.update(rec.id, {"last_seen": T0 + 1, "data": {"k": 1}}, now=T0 + 1)),
        ("replace", lambda: store.replace(old.id, make_record(), now=T0)),
        ("advance", lambda: store.advance(fam.id, expected_generation=0, last_seen=T0 + 1, idle_expires_at=T0 + 99,
                                          now=T0 + 1)),
        ("list_for_user", lambda: store.list_for_user("alice", now=T0)),
        ("list_all", lambda: store.list_all(now=T0)),
        ("deny", lambda: store.deny("j", until=T0 + 60, now=T0)),
        ("is_denied", lambda: store.is_denied("j", now=T0)),
        ("bump_epoch", lambda: store.bump_epoch("alice")),
        ("get_epoch", lambda: store.get_epoch("alice")),
        ("throttle_update", lambda: store.throttle_update(["ip:x", "user:alice"], bump, now=T0, window=60)),
        ("throttle_read", lambda: store.throttle_read(["ip:x", "user:alice"], now=T0, window=60)),
        ("throttle_reset", lambda: store.throttle_reset("ip:x", "user:alice")),
        ("delete", lambda: store.delete(rec.id)),
        ("delete_for_user", lambda: store.delete_for_user("bob")),
        ("purge_expired", lambda: store.purge_expired(now=T0 + 10**6)),
        ("ping", store.ping),
    ]


# -- SQLite ----------------------------------------------------------------------------------------------
def test_sqlite_store_never_blocks_the_loop(tmp_path: Path, slow_callbacks: SlowCallbacks) -> None:
    path = tmp_path / "sw.db"

    def write_lock() -> Callable[[], None]:
        conn = sqlite3.connect(path, timeout=30, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        return lambda: (conn.execute("COMMIT"), conn.close())  # type: ignore[func-returns-value]

    async def main() -> None:
        store = await AsyncSQLStore.from_url(f"sqlite:///{path}")
        try:
            await check_never_blocks(await every_operation(store), _holding(write_lock), slow_callbacks)
        finally:
            await store.close()

    run_in_debug_mode(main)


# -- PostgreSQL ------------------------------------------------------------------------------------------
@pytest.mark.postgres
def test_postgres_store_never_blocks_the_loop(postgres_url: str, slow_callbacks: SlowCallbacks) -> None:
    def table_lock() -> Callable[[], None]:
        conn = psycopg.connect(postgres_url)
        conn.execute(f"LOCK TABLE {TABLES} IN ACCESS EXCLUSIVE MODE")
        return lambda: (conn.commit(), conn.close())  # type: ignore[func-returns-value]

    async def main() -> None:
        store = await AsyncSQLStore.from_url(postgres_url)
        try:
            async with store.engine.begin() as conn:
                from sqlalchemy import text

                await conn.execute(text(f"TRUNCATE {TABLES}"))
            await check_never_blocks(await every_operation(store), _holding(table_lock), slow_callbacks)
        finally:
            await store.close()

    run_in_debug_mode(main)


# -- Redis (a private server: pausing it must not slow anyone else) -----------------------------------------
@pytest.fixture(scope="module")
def private_redis() -> Iterator[str]:
    server = start_redis_server()
    try:
        yield server.url
    finally:
        server.cleanup()


def _paused(url: str) -> Stall:
    def pause() -> Callable[[], None]:
        with redis.Redis.from_url(url) as client:
            client.execute_command("CLIENT", "PAUSE", int(STALL * 1000), "ALL")
        return lambda: None  # the pause ends by itself

    return _holding(pause)


@pytest.mark.redis
def test_redis_store_never_blocks_the_loop(private_redis: str, slow_callbacks: SlowCallbacks) -> None:
    async def main() -> None:
        store = await AsyncRedisStore.from_url(private_redis, prefix="block:")
        try:
            ops = await every_operation(store)
            ops.append(("list_denied", lambda: store.list_denied(now=T0)))
            await check_never_blocks(ops, _paused(private_redis), slow_callbacks)
        finally:
            await store.close()

    run_in_debug_mode(main)


@pytest.mark.redis
def test_cached_store_never_blocks_the_loop(private_redis: str, slow_callbacks: SlowCallbacks) -> None:
    """The local cache's own work (the subscriber and loader tasks, its reads and invalidations) included."""

    async def main() -> None:
        inner = await AsyncRedisStore.from_url(private_redis, prefix="blockc:")
        store = AsyncCachedStore(inner, redis_client=inner.client, channel_prefix="blockc:").start()
        try:
            assert await store.wait_healthy(5)
            ops = await every_operation(store)
            await check_never_blocks(ops, _paused(private_redis), slow_callbacks)
            assert await store.wait_healthy(5)
        finally:
            await store.close()
        assert not slow_callbacks.reports, slow_callbacks.reports  # close() included

    run_in_debug_mode(main)


@pytest.mark.redis
def test_the_check_catches_a_blocking_call(private_redis: str, slow_callbacks: SlowCallbacks) -> None:
    """The harness itself: a sync Redis call made on the loop while the server is paused is reported."""
    sync_client = redis.Redis.from_url(private_redis)

    async def blocking_get() -> None:
        sync_client.get("x")  # waits for the pause to end, on the loop

    async def main() -> None:
        with pytest.raises(AssertionError, match="blocked the event loop"):
            await check_never_blocks([("blocking get", blocking_get)], _paused(private_redis), slow_callbacks)

    try:
        run_in_debug_mode(main)
    finally:
        sync_client.close()
