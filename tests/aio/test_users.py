"""AsyncUserStore on SQLAlchemy's async engine (SQLite, PostgreSQL): the users table as the sync tests know it,
the table left to `open` by the bare constructor, password hashing through the async hasher, the recent-users
cache, and concurrent creation of one name."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from sessionward.accounts import User as SharedUser
from sessionward.aio import db as aio_db
from sessionward.aio.passwords import AsyncArgon2idHasher
from sessionward.aio.users import AsyncRecentUsers, AsyncUserStore, User
from sessionward.clock import ManualClock
from sessionward.exceptions import NotFound, PasswordPolicyError, StoreUnavailable, ValidationError
from sessionward.passwords import PasswordPolicy
from sessionward.users import User as SyncUser

from .conftest import username

pytestmark = pytest.mark.asyncio

PW = "correct horse battery staple"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    """The users table lives in SQL only."""
    return str(request.param)


async def test_create_and_read_back(users: AsyncUserStore, clock: ManualClock) -> None:
    name = username().upper()
    user = await users.create(name, PW)
    assert user.username == name and user.created_at == clock.now() and not user.disabled
    assert user.password_hash.startswith("$argon2id$") and PW not in repr(user)
    assert await users.get(user.id) == user
    assert await users.get_by_username(name.lower()) == user  # looked up normalized, shown as given
    assert user in await users.list()
    assert await users.count() >= 1
    await users.ping()


async def test_one_user_record_for_both_flavours(users: AsyncUserStore) -> None:
    assert User is SharedUser is SyncUser  # data is shared; only the I/O has two flavours


async def test_unknown_or_impossible_lookups_are_none(users: AsyncUserStore) -> None:
    assert await users.get("x" * 65) is None
    assert await users.get(12345) is None  # type: ignore[arg-type]
    assert await users.get_by_username("") is None
    assert await users.get_by_username("nobody-" + username()) is None


async def test_taken_username_in_any_case_is_refused(users: AsyncUserStore) -> None:
    name = username()
    await users.create(name, PW)
    with pytest.raises(ValidationError):
        await users.create(name.upper(), PW)


async def test_a_burst_of_creations_of_one_name_makes_one_account(users: AsyncUserStore) -> None:
    name = username()
    results = await asyncio.gather(*[users.create(name, PW) for _ in range(8)], return_exceptions=True)
    made = [r for r in results if isinstance(r, User)]
    assert len(made) == 1 and all(isinstance(r, ValidationError) for r in results if r not in made), results
    assert await users.get_by_username(name) == made[0]


async def test_policy_and_username_rules_apply_on_create(users: AsyncUserStore) -> None:
    with pytest.raises(PasswordPolicyError):
        await users.create(username(), "short")
    with pytest.raises(ValidationError):
        await users.create(" padded ", PW)


async def test_set_password_disable_and_update_hash(users: AsyncUserStore, clock: ManualClock,
                                                    hasher: AsyncArgon2idHasher) -> None:
    user = await users.create(username(), PW)
    clock.advance(10)
    changed = await users.set_password(user.id, "another long passphrase 7")
    assert changed.password_changed_at == clock.now() and changed.password_hash != user.password_hash
    assert await hasher.verify(changed.password_hash, "another long passphrase 7")
    assert (await users.set_disabled(user.id)).disabled
    assert (await users.get(user.id)).disabled  # type: ignore[union-attr]
    # a rehash never overwrites a password changed meanwhile
    assert not await users.update_hash(user.id, await hasher.hash(PW), expected_hash=user.password_hash)
    assert await users.update_hash(user.id, await hasher.hash(PW), expected_hash=changed.password_hash)
    with pytest.raises(NotFound):
        await users.set_password("no-such-id", PW)


async def test_the_bare_constructor_leaves_the_table_to_open(tmp_path: Path, hasher: AsyncArgon2idHasher,
                                                             clock: ManualClock) -> None:
    engine = aio_db.make_engine(f"sqlite:///{tmp_path / 'users.db'}")
    try:
        bare = AsyncUserStore(engine, hasher=hasher, policy=PasswordPolicy(), clock=clock)
        with pytest.raises(StoreUnavailable):  # no table yet: fails closed, never half-works
            await bare.get_by_username("alice")
        opened = await AsyncUserStore.open(engine, hasher=hasher, policy=PasswordPolicy(), clock=clock)
        user = await opened.create("alice", PW)
        assert await bare.get_by_username("alice") == user
        await opened.ensure_schema()  # idempotent
        await bare.close()
        await opened.close()
    finally:
        await engine.dispose()


async def test_database_down_is_store_unavailable(hasher: AsyncArgon2idHasher, clock: ManualClock) -> None:
    down = aio_db.make_engine("postgresql://postgres@127.0.0.1:1/none", connect_timeout=1)
    users = AsyncUserStore(down, hasher=hasher, policy=PasswordPolicy(), clock=clock)
    for call in (users.ping(), users.get_by_username("alice"), users.get("a" * 22), users.ensure_schema()):
        with pytest.raises(StoreUnavailable):
            await call
    await down.dispose()


async def test_recent_users_never_outlive_a_revocation_or_a_local_change(users: AsyncUserStore, engine: Any,
                                                                         hasher: AsyncArgon2idHasher,
                                                                         clock: ManualClock) -> None:
    elsewhere = await AsyncUserStore.open(engine, hasher=hasher, policy=PasswordPolicy(), clock=clock)
    alice = await users.create(username(), PW)
    cache = AsyncRecentUsers(users, clock=clock, ttl=5)
    assert await cache.get(alice.id, epoch=0) == alice
    await users.set_disabled(alice.id, True)  # through the same store: seen at once
    assert (await cache.get(alice.id, epoch=0)).disabled  # type: ignore[union-attr]
    await users.set_disabled(alice.id, False)
    assert not (await cache.get(alice.id, epoch=0)).disabled  # type: ignore[union-attr]
    await elsewhere.set_disabled(alice.id, True)  # another process, no revocation: within ttl
    assert (await cache.get(alice.id, epoch=1)).disabled  # type: ignore[union-attr]  # a new epoch misses
    clock.advance(5.1)
    assert (await cache.get(alice.id, epoch=0)).disabled  # type: ignore[union-attr]
    await elsewhere.close()
