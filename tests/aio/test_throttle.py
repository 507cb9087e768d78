"""AsyncLoginThrottle on real stores (SQLite, PostgreSQL): backoff after the free attempts, the victim not locked
out by another address, and bursts on one event loop decided exactly as sequential attempts (A6: no lost counts,
never more than the allowance checked)."""

from __future__ import annotations

import asyncio

import pytest

from sessionward.aio.stores.protocol import AsyncSessionStore
from sessionward.aio.throttle import AsyncLoginThrottle, Attempt
from sessionward.clock import ManualClock
from sessionward.config import ThrottlePolicy
from sessionward.exceptions import Throttled

from .conftest import username

pytestmark = pytest.mark.asyncio


async def _fail(throttle: AsyncLoginThrottle, name: str, ip: str) -> Attempt:
    return await throttle.attempt(name, ip)  # counted as a failure unless `succeeded` is called


async def test_backoff_after_the_free_failures_and_reset_on_success(store: AsyncSessionStore,
                                                                    clock: ManualClock) -> None:
    throttle = AsyncLoginThrottle(store, ThrottlePolicy(account_free=3), clock)
    name, ip = username(), "203.0.113.7"
    for _ in range(4):
        await _fail(throttle, name, ip)
    assert await throttle.retry_after(name, ip) == 2  # base_backoff after the 4th failure
    with pytest.raises(Throttled) as exc:
        await throttle.attempt(name, ip)
    assert exc.value.retry_after == 2
    clock.advance(2)
    attempt = await throttle.attempt(name, ip)
    await throttle.succeeded(attempt)
    assert await throttle.retry_after(name, ip) == 0
    await throttle.check(name, ip)


async def test_an_attacker_address_does_not_lock_the_victim_out(store: AsyncSessionStore, clock: ManualClock) -> None:
    throttle = AsyncLoginThrottle(store, ThrottlePolicy(account_free=3), clock)
    name = username()
    for _ in range(10):
        try:
            await _fail(throttle, name, "198.51.100.66")
        except Throttled:
            clock.advance(1)
    with pytest.raises(Throttled):
        await throttle.check(name, "198.51.100.66")
    await throttle.check(name, "192.0.2.10")  # the victim's clean address is gated by `acctnew` only


async def test_unknown_usernames_are_counted_like_real_ones(store: AsyncSessionStore, clock: ManualClock) -> None:
    throttle = AsyncLoginThrottle(store, ThrottlePolicy(account_free=2), clock)
    for name in (username(), "no such user " + username()):
        for _ in range(3):
            await _fail(throttle, name, "203.0.113.9")
        assert await throttle.retry_after(name, "203.0.113.9") > 0


@pytest.mark.parametrize("burst", [12, 30])
async def test_A6_a_burst_is_decided_like_sequential_attempts(store: AsyncSessionStore, clock: ManualClock,
                                                              burst: int) -> None:
    """N concurrent attempts on one account: exactly `account_free + 1` are let through to the password check
    (and counted), the rest refused; no count is lost."""
    free = 5
    throttle = AsyncLoginThrottle(store, ThrottlePolicy(account_free=free, address_free=1000), clock)
    name, ip = username(), "203.0.113.20"
    results = await asyncio.gather(*[throttle.attempt(name, ip) for _ in range(burst)], return_exceptions=True)
    allowed = [r for r in results if isinstance(r, Attempt)]
    refused = [r for r in results if isinstance(r, Throttled)]
    assert len(allowed) == free + 1 and len(refused) == burst - free - 1, results
    # exactly free + 1 failures are on record: the next backoff is the first step, not more, not less
    assert await throttle.retry_after(name, ip) == 2


async def test_concurrent_failures_lose_no_count(store: AsyncSessionStore, clock: ManualClock) -> None:
    """N concurrent failures, all within the allowance: every one is counted (N - 1 free failures leave no
    backoff; the Nth starts it), on every store."""
    n = 25
    throttle = AsyncLoginThrottle(store, ThrottlePolicy(account_free=n - 1, address_free=1000), clock)
    name, ip = username(), "203.0.113.21"
    attempts = await asyncio.gather(*[throttle.attempt(name, ip) for _ in range(n)])
    assert len(attempts) == n
    assert sorted(a.address_after.failures for a in attempts) == list(range(1, n + 1))  # each saw its own count
    assert await throttle.retry_after(name, ip) == 2
    with pytest.raises(Throttled):
        await throttle.attempt(name, ip)


async def test_concurrent_successes_release_their_attempts(store: AsyncSessionStore, clock: ManualClock) -> None:
    throttle = AsyncLoginThrottle(store, ThrottlePolicy(account_free=1000, address_free=3), clock)
    ip = "203.0.113.22"
    attempts = await asyncio.gather(*[throttle.attempt(username(), ip) for _ in range(4)])
    await asyncio.gather(*[throttle.succeeded(a) for a in attempts])
    assert await throttle.retry_after(username(), ip) == 0  # the address counter holds failures only
