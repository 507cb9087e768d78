"""Fixtures for the async token tests: a policy, an in-memory key set, the shared SQL key set on the store's
database (its tables emptied first on PostgreSQL, where the session's tests share one database)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_asyncio
import sqlalchemy as sa

from sessionward.aio.stores.protocol import AsyncSessionStore
from sessionward.aio.tokens import AsyncSQLKeyRepository, AsyncTokenService
from sessionward.clock import ManualClock
from sessionward.tokens import KeySet, TokenPolicy

ISSUER = "https://auth.example.test"
AUDIENCE = "example-api"
KEY_TABLES = ("sw_signing_keys", "sw_signing_keys_version", "sw_signing_keys_revoked")


@pytest.fixture
def refresh_key() -> bytes:
    return secrets.token_bytes(32)


@pytest.fixture
def kek() -> bytes:
    return secrets.token_bytes(32)


@pytest.fixture
def keyset(clock: ManualClock) -> KeySet:
    return KeySet.generate("EdDSA", now=clock.now())


@pytest.fixture
def make_service(store: AsyncSessionStore, clock: ManualClock, refresh_key: bytes) -> Callable[..., AsyncTokenService]:
    def make(keys: Any, *, store_: Any = None, **policy_changes: Any) -> AsyncTokenService:
        policy = TokenPolicy(**{"issuer": ISSUER, "audience": AUDIENCE, **policy_changes})
        return AsyncTokenService(store=store_ or store, keys=keys, refresh_key=refresh_key, policy=policy,
                                 clock=clock)

    return make


@pytest.fixture
def service(make_service: Callable[..., AsyncTokenService], keyset: KeySet) -> AsyncTokenService:
    return make_service(keyset)


@pytest_asyncio.fixture
async def make_repo(engine: Any, kek: bytes) -> AsyncIterator[Callable[..., Any]]:
    """`await make_repo(**options)`: one more instance's view of the one shared key table."""
    async with engine.begin() as conn:
        for table in KEY_TABLES:
            exists = await conn.run_sync(lambda sync, name=table: sa.inspect(sync).has_table(name))
            if exists:
                await conn.execute(sa.text(f"DELETE FROM {table}"))

    async def make(**options: Any) -> AsyncSQLKeyRepository:
        return await AsyncSQLKeyRepository.open(engine, kek, **options)

    yield make
