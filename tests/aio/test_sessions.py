"""AsyncSessionManager on real stores (SQLite, PostgreSQL): the cookie-session properties C2-C4, C6, C7, C13 of
the sync tests, through the async source the sync module is generated from, plus bursts on one event loop."""

from __future__ import annotations

import asyncio

import pytest

from sessionward.aio.sessions import AsyncSessionManager
from sessionward.aio.stores.protocol import AsyncSessionStore
from sessionward.clock import ManualClock
from sessionward.config import SessionPolicy
from sessionward.exceptions import ReauthenticationRequired
from sessionward.ids import hash_secret, new_secret

from .conftest import username

pytestmark = pytest.mark.asyncio


@pytest.fixture
def manager(store: AsyncSessionStore, clock: ManualClock) -> AsyncSessionManager:
    return AsyncSessionManager(store=store, policy=SessionPolicy(), clock=clock)


async def test_C2_unknown_secret_is_not_adopted_and_creates_nothing(manager: AsyncSessionManager) -> None:
    alice = username()
    await manager.login(alice)
    now = manager.clock.now()
    before = len(await manager.store.list_all(now=now, limit=1_000_000))
    unknown = new_secret()
    for made_up in [unknown, "A" * 43, "x", "", "../../etc/passwd", "A" * 5000, "é" * 43, None]:
        assert await manager.load(made_up) is None
    assert await manager.store.get_by_secret(hash_secret(unknown), now=now) is None
    assert len(await manager.store.list_all(now=now, limit=1_000_000)) == before


async def test_C3_login_deletes_the_previous_session(manager: AsyncSessionManager) -> None:
    alice, bob = username(), username()
    first = await manager.login(alice)
    second = await manager.login(bob, previous_secret=first.secret)
    assert second.secret != first.secret
    assert await manager.load(first.secret) is None  # fixation: the pre-login secret is dead
    loaded = await manager.load(second.secret)
    assert loaded is not None and loaded.user_id == bob
    assert await manager.list_for_user(alice) == []


async def test_C3_rotation_issues_a_new_secret_and_kills_the_old(manager: AsyncSessionManager,
                                                                   clock: ManualClock) -> None:
    s = await manager.login(username())
    clock.advance(5)
    loaded = await manager.load(s.secret)
    assert loaded is not None
    rotated = await manager.rotate(loaded, reauthenticated=True)
    assert rotated is not None and rotated.secret != s.secret and rotated.id != s.id
    assert await manager.load(s.secret) is None
    again = await manager.load(rotated.secret)
    assert again is not None and again.record.auth_at == clock.now()


async def test_C4_idle_timeout_and_touch(manager: AsyncSessionManager, clock: ManualClock) -> None:
    s = await manager.login(username())
    clock.advance(10)
    loaded = await manager.load(s.secret)
    assert loaded is not None and loaded.record.last_seen == s.record.created_at  # not written within the interval
    clock.advance(29 * 60)
    loaded = await manager.load(s.secret)
    assert loaded is not None and loaded.record.last_seen == clock.now()  # touched: the idle timer moved
    clock.advance(29 * 60)
    assert await manager.load(s.secret) is not None
    clock.advance(30 * 60 + 1)
    assert await manager.load(s.secret) is None


async def test_C4_absolute_lifetime_even_with_activity(manager: AsyncSessionManager, clock: ManualClock) -> None:
    s = await manager.login(username())
    for _ in range(int(12 * 60 / 20)):
        clock.advance(20 * 60)
        if await manager.load(s.secret) is None:
            break
    assert clock.now() - s.record.created_at <= 12 * 3600
    clock.advance(60)
    assert await manager.load(s.secret) is None


async def test_C6_revoke_all_ends_every_session_and_bumps_the_epoch(manager: AsyncSessionManager,
                                                                     store: AsyncSessionStore) -> None:
    alice = username()
    a, b = await manager.login(alice), await manager.login(alice)
    other = await manager.login(username())
    epoch = await store.get_epoch(alice)
    assert await manager.revoke_all(alice) == 2
    assert await manager.load(a.secret) is None and await manager.load(b.secret) is None
    assert await manager.load(other.secret) is not None
    assert await store.get_epoch(alice) == epoch + 1


async def test_C6_a_session_from_an_older_epoch_is_dead_even_if_its_record_survived(
    manager: AsyncSessionManager, store: AsyncSessionStore
) -> None:
    alice = username()
    s = await manager.login(alice)
    await store.bump_epoch(alice)  # e.g. "log out everywhere" through the token service on another instance
    assert await manager.load(s.secret) is None
    assert await store.get(s.id, now=manager.clock.now()) is None  # and its record is gone


async def test_C7_list_and_end_own_sessions_only(manager: AsyncSessionManager) -> None:
    alice, bob = username(), username()
    mine = await manager.login(alice, user_agent="Firefox", ip="10.0.0.1")
    other_mine = await manager.login(alice)
    bobs = await manager.login(bob)
    listed = await manager.list_for_user(alice)
    assert {r.id for r in listed} == {mine.id, other_mine.id}
    assert await manager.revoke(alice, bobs.id) is False  # not hers
    assert await manager.load(bobs.secret) is not None
    assert await manager.revoke(alice, other_mine.id) is True
    assert await manager.load(other_mine.secret) is None


async def test_C7_end_all_others_keeps_this_one(manager: AsyncSessionManager) -> None:
    alice = username()
    keep = await manager.login(alice)
    drop1, drop2 = await manager.login(alice), await manager.login(alice)
    loaded = await manager.load(keep.secret)
    assert loaded is not None
    assert await manager.revoke_others(loaded) == 2
    assert await manager.load(keep.secret) is not None
    assert await manager.load(drop1.secret) is None and await manager.load(drop2.secret) is None


async def test_C13_recent_auth_window(manager: AsyncSessionManager, clock: ManualClock) -> None:
    s = await manager.login(username())
    manager.require_recent_auth(s)
    clock.advance(11 * 60)
    loaded = await manager.load(s.secret)
    assert loaded is not None
    with pytest.raises(ReauthenticationRequired):
        manager.require_recent_auth(loaded)
    rotated = await manager.rotate(loaded, reauthenticated=True)
    assert rotated is not None
    manager.require_recent_auth(rotated)


async def test_logout_is_final_and_never_resurrected(manager: AsyncSessionManager, clock: ManualClock) -> None:
    alice = username()
    s = await manager.login(alice)
    loaded = await manager.load(s.secret)
    assert loaded is not None
    await manager.logout(loaded)
    assert await manager.load(s.secret) is None
    assert await manager.rotate(loaded) is None  # rotating a revoked session writes nothing
    clock.advance(120)
    assert await manager.load(s.secret) is None  # nor does a touch after the interval
    assert await manager.list_for_user(alice) == []


async def test_a_revocation_racing_the_touch_is_never_undone(manager: AsyncSessionManager,
                                                             clock: ManualClock) -> None:
    """Loads (each due to touch) and a logout at once, on one loop: whatever the interleaving, the session is
    gone afterwards and no load after the logout returns it."""
    for _ in range(5):
        s = await manager.login(username())
        clock.advance(120)  # every load below wants to write last_seen
        loaded = await manager.load(s.secret)
        assert loaded is not None
        clock.advance(120)
        await asyncio.gather(*[manager.load(s.secret) for _ in range(10)], manager.logout(loaded),
                             *[manager.load(s.secret) for _ in range(10)])
        assert await manager.load(s.secret) is None
        assert await manager.store.get(s.id, now=clock.now()) is None


async def test_a_burst_of_logins_gives_distinct_live_sessions(manager: AsyncSessionManager) -> None:
    alice = username()
    sessions = await asyncio.gather(*[manager.login(alice) for _ in range(30)])
    assert len({s.secret for s in sessions}) == 30 and len({s.id for s in sessions}) == 30
    loaded = await asyncio.gather(*[manager.load(s.secret) for s in sessions])
    assert all(s is not None and s.user_id == alice for s in loaded)
    assert len(await manager.list_for_user(alice)) == 30
