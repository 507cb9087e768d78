"""Fixtures for the asyncio flavour: every async store on real backends (SQLite, PostgreSQL, Redis, Redis with
the local cache), each test on its own event loop (pytest-asyncio), and the async users table (SQL), hasher and
throttle on top."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import pytest_asyncio

from sessionward.aio import db as aio_db
from sessionward.aio.passwords import AsyncArgon2idHasher, AsyncHashGate
from sessionward.aio.stores import open_async_store
from sessionward.aio.stores.protocol import AsyncSessionStore
from sessionward.aio.stores.sql import AsyncSQLStore
from sessionward.aio.throttle import AsyncLoginThrottle
from sessionward.aio.users import AsyncUserStore
from sessionward.clock import ManualClock
from sessionward.config import ThrottlePolicy
from sessionward.passwords import PasswordPolicy

STORES = [
    "sqlite",
    pytest.param("postgres", marks=pytest.mark.postgres),
    pytest.param("redis", marks=pytest.mark.redis),
    pytest.param("redis-cached", marks=pytest.mark.redis),  # AsyncCachedStore: reads from memory, pub/sub
]


@pytest.fixture(params=STORES)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def aio_postgres_url(postgres_url: str) -> Iterator[str]:
    """A PostgreSQL database of the async tests' own (beside the session's `postgres_url`, on the same server),
    dropped at the end: what they leave behind (key rows sealed under their own key-encryption keys, users,
    counters) never meets the sync tests."""
    import psycopg

    admin_url = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    name = f"sw_test_aio_{secrets.token_hex(6)}"
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=3) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(admin_url)
    try:
        yield urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))
    finally:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=3) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def store_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The SQL database of the test (the users table and the key set; the store too unless it is Redis): the
    async tests' PostgreSQL database on "postgres", else a fresh SQLite file. Records of different tests never
    meet in the shared one: every id is random."""
    if backend == "postgres":
        return str(request.getfixturevalue("aio_postgres_url"))
    return f"sqlite:///{tmp_path / 'store.db'}"


@pytest_asyncio.fixture
async def store(backend: str, store_url: str, request: pytest.FixtureRequest) -> AsyncIterator[AsyncSessionStore]:
    if backend.startswith("redis"):
        s = await open_async_store(request.getfixturevalue("redis_url"),
                                   prefix=request.getfixturevalue("redis_prefix"),
                                   local_cache=backend == "redis-cached")
    else:
        s = await AsyncSQLStore.from_url(store_url)
    yield s
    await s.close()


@pytest_asyncio.fixture
async def engine(store_url: str) -> AsyncIterator[Any]:
    """An async engine on the same database as `store` (users table, key set)."""
    e = aio_db.make_engine(store_url)
    yield e
    await e.dispose()


@pytest.fixture
def hasher() -> Iterator[AsyncArgon2idHasher]:
    h = AsyncArgon2idHasher.insecure_for_tests(gate=AsyncHashGate(4, max_waiting=256, max_wait=60))
    yield h
    h.close()


@pytest_asyncio.fixture
async def users(engine: Any, hasher: AsyncArgon2idHasher, clock: ManualClock) -> AsyncIterator[AsyncUserStore]:
    u = await AsyncUserStore.open(engine, hasher=hasher, policy=PasswordPolicy(), clock=clock)
    yield u
    await u.close()


@pytest.fixture
def throttle(store: AsyncSessionStore, clock: ManualClock) -> AsyncLoginThrottle:
    return AsyncLoginThrottle(store, ThrottlePolicy(), clock)


def username() -> str:
    """A username no other test uses (the PostgreSQL database is shared by the session's tests)."""
    return "user-" + secrets.token_hex(6)
