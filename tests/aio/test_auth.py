"""AsyncAuthenticator on real stores (SQLite, PostgreSQL): one answer for unknown user, wrong password and
disabled account (with the dummy verify), rehash on login, A6 bursts on one event loop, and the property the
async flavour exists for: argon2 runs off the event loop, so a login in progress does not hold up the other
requests of its loop."""

from __future__ import annotations

import asyncio
import collections
import threading
import time
from typing import Any

import argon2
import pytest
import pytest_asyncio

from sessionward.aio.auth import AsyncAuthenticator
from sessionward.aio.passwords import AsyncArgon2idHasher, AsyncHashGate
from sessionward.aio.sessions import AsyncSessionManager
from sessionward.aio.stores.protocol import AsyncSessionStore
from sessionward.aio.throttle import AsyncLoginThrottle
from sessionward.aio.users import AsyncUserStore, User
from sessionward.clock import ManualClock
from sessionward.config import ThrottlePolicy
from sessionward.exceptions import InvalidCredentials, Throttled
from sessionward.passwords import Argon2idHasher, PasswordPolicy

from .conftest import username

pytestmark = pytest.mark.asyncio

PW = "mauve-Heron-parsnip-81"
IP = "192.0.2.10"


class SpyHasher(Argon2idHasher):
    """A fast hasher that records what its worker threads were asked to do."""

    calls: list[str]

    @classmethod
    def make(cls, memory_cost: int = 64, time_cost: int = 1, parallelism: int = 1) -> SpyHasher:
        spy = cls.__new__(cls)
        spy.calls = []
        spy.durations = []
        spy._lock = threading.Lock()
        spy._setup(memory_cost, time_cost, parallelism, 16, 16, gate=None)
        return spy

    def _note(self, what: str, started: float) -> None:
        with self._lock:
            self.calls.append(what)
            self.durations.append(time.perf_counter() - started)

    def verify_ungated(self, password_hash: str, encoded: bytes) -> bool:
        started = time.perf_counter()
        try:
            return super().verify_ungated(password_hash, encoded)
        finally:
            self._note("verify", started)

    def dummy_verify_ungated(self, encoded: bytes) -> None:
        started = time.perf_counter()
        try:
            super().dummy_verify_ungated(encoded)
        finally:
            self._note("dummy_verify", started)


def make_auth(users: AsyncUserStore, store: AsyncSessionStore, clock: ManualClock, *,
              hasher: AsyncArgon2idHasher | None = None, policy: ThrottlePolicy | None = None) -> AsyncAuthenticator:
    return AsyncAuthenticator(users=users, hasher=hasher or users.hasher,
                              throttle=AsyncLoginThrottle(store, policy or ThrottlePolicy(), clock), clock=clock)


@pytest_asyncio.fixture
async def alice(users: AsyncUserStore) -> User:
    return await users.create(username(), PW)


@pytest.fixture
def auth(users: AsyncUserStore, store: AsyncSessionStore, clock: ManualClock) -> AsyncAuthenticator:
    return make_auth(users, store, clock)


async def refusal(auth: AsyncAuthenticator, name: Any, password: Any, ip: str = IP) -> None:
    with pytest.raises(InvalidCredentials) as exc:
        await auth.authenticate(name, password, ip=ip)
    assert str(exc.value) == str(InvalidCredentials())


async def test_right_password_logs_in_case_insensitively(auth: AsyncAuthenticator, alice: User) -> None:
    assert await auth.authenticate(alice.username, PW, ip=IP) == alice
    assert (await auth.authenticate(alice.username.upper(), PW, ip=IP)).id == alice.id


async def test_A4_unknown_wrong_disabled_and_malformed_look_the_same(auth: AsyncAuthenticator, alice: User,
                                                                     users: AsyncUserStore) -> None:
    bob = await users.create(username(), PW)
    await users.set_disabled(bob.id)
    await refusal(auth, alice.username, "not the password")
    await refusal(auth, "ghost-" + username(), PW)
    await refusal(auth, bob.username, PW)
    await refusal(auth, 12345, PW)
    await refusal(auth, alice.username, None)


@pytest.mark.parametrize("case", ["unknown", "disabled", "overlong"])
async def test_every_refusal_costs_one_argon2_verification(users: AsyncUserStore, store: AsyncSessionStore,
                                                           clock: ManualClock, case: str) -> None:
    """No timing leak: an unknown user gets the dummy verify, a disabled one the real one, overlong input a
    dummy verify of nothing (never hashing the input)."""
    spy = SpyHasher.make()
    hasher = AsyncArgon2idHasher(spy)
    user = await users.create(username(), PW)
    if case == "disabled":
        await users.set_disabled(user.id)
    name = {"unknown": "ghost-" + username(), "disabled": user.username, "overlong": "x" * 300}[case]
    await refusal(make_auth(users, store, clock, hasher=hasher), name, PW)
    assert spy.calls == (["verify"] if case == "disabled" else ["dummy_verify"])
    hasher.close()


async def test_A1_parameter_change_rehashes_on_login(users: AsyncUserStore, store: AsyncSessionStore,
                                                     clock: ManualClock, alice: User) -> None:
    old = alice.password_hash
    stronger = AsyncArgon2idHasher(Argon2idHasher(memory_cost=19 * 1024, time_cost=2, parallelism=1))
    auth = make_auth(users, store, clock, hasher=stronger)
    await refusal(auth, alice.username, "not the password")
    assert (await users.get(alice.id)).password_hash == old  # type: ignore[union-attr]  # no rehash on failure
    logged_in = await auth.authenticate(alice.username, PW, ip=IP)
    new = (await users.get(alice.id)).password_hash  # type: ignore[union-attr]
    assert new == logged_in.password_hash != old
    assert argon2.extract_parameters(new).memory_cost == 19 * 1024
    assert (await auth.authenticate(alice.username, PW, ip=IP)).password_hash == new  # current: left alone
    stronger.close()


async def test_A3_failures_lead_to_throttled(auth: AsyncAuthenticator, alice: User, clock: ManualClock) -> None:
    for _ in range(ThrottlePolicy().account_free + 1):
        await refusal(auth, alice.username, "wrong")
    with pytest.raises(Throttled):
        await auth.authenticate(alice.username, PW, ip=IP)
    assert await auth.authenticate(alice.username, PW, ip="198.51.100.20") == alice  # a clean address gets in


async def test_A6_concurrent_burst_checks_only_the_allowance(users: AsyncUserStore, store: AsyncSessionStore,
                                                             clock: ManualClock, alice: User) -> None:
    """3 * (free + 1) wrong passwords at once on one loop: exactly free + 1 are checked (each one argon2
    verification), every other one is refused before any hashing; no count is lost."""
    spy = SpyHasher.make(memory_cost=4096, time_cost=2)  # slow enough (ms, GIL released) for checks to overlap
    hasher = AsyncArgon2idHasher(spy, gate=AsyncHashGate(4, max_waiting=256, max_wait=60))
    policy = ThrottlePolicy()
    auth = make_auth(users, store, clock, hasher=hasher, policy=policy)
    n = 3 * (policy.account_free + 1)

    async def one(i: int) -> str:
        try:
            await auth.authenticate(alice.username, f"wrong guess {i}", ip=IP)
        except InvalidCredentials:
            return "checked"
        except Throttled:
            return "refused"
        return "ok"

    answers = collections.Counter(await asyncio.gather(*[one(i) for i in range(n)]))
    assert answers == {"checked": policy.account_free + 1, "refused": n - policy.account_free - 1}, answers
    assert spy.calls.count("verify") == policy.account_free + 1
    hasher.close()


async def test_a_login_in_progress_does_not_hold_up_another_request_on_the_loop(
    users: AsyncUserStore, store: AsyncSessionStore, clock: ManualClock
) -> None:
    """While argon2 runs for one login, an authenticated request (a session load through the real store) on the
    same event loop keeps being answered: the longest it waits is a small fraction of the hash's own duration.
    With argon2 on the loop thread it would wait for the whole hash (a ratio of 1 or more) and no request would
    be answered while the hash runs. Not a speed benchmark: the bound is relative to the hash, measured in the
    same run, and a run passes if any of three rounds shows it (a loaded machine may stall a thread once)."""
    spy = SpyHasher.make(memory_cost=32 * 1024, time_cost=3, parallelism=1)  # a few hundred ms
    hasher = AsyncArgon2idHasher(spy)
    users_slow = AsyncUserStore(users._engine, hasher=hasher, policy=PasswordPolicy(), clock=clock)
    account = await users_slow.create(username(), PW)  # its hash has the slow parameters: verifying costs that
    auth = make_auth(users_slow, store, clock, hasher=hasher,
                     policy=ThrottlePolicy(account_free=100, address_free=100))
    sessions = AsyncSessionManager(store=store, clock=clock)
    session = await sessions.login(account.id)
    rounds = []
    try:
        for _ in range(3):
            spy.durations.clear()
            login = asyncio.create_task(auth.authenticate(account.username, PW, ip=IP))
            waits: list[float] = []
            while not login.done():
                started = time.perf_counter()
                loaded = await sessions.load(session.secret)
                waits.append(time.perf_counter() - started)
                assert loaded is not None and loaded.user_id == account.id
                # a request also waits for its client (receive, send), which lets the loop run other tasks; a
                # session read answered from memory (SQLite: the loop's remembered answers) does not yield
                await asyncio.sleep(0)
            assert (await login).id == account.id
            hash_time = max(spy.durations)
            rounds.append((max(waits) / hash_time, len(waits), hash_time))
            if rounds[-1][0] < 0.25 and rounds[-1][1] >= 3:
                break
        else:
            pytest.fail(f"a request waited for the login's hash: (longest wait / hash time, requests answered, "
                        f"hash seconds) per round: {rounds}")
    finally:
        await users_slow.close()
        hasher.close()
