"""A3: throttling per account and per client address on the real stores (SQLite in tmp_path, Redis), with
a manual clock; an attacker can neither brute-force freely nor lock a victim out indefinitely."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
import sqlalchemy as sa

from sessionward.clock import ManualClock
from sessionward.config import ThrottlePolicy
from sessionward.exceptions import Throttled
from sessionward.stores.base import SessionStore
from sessionward.stores.sql import SQLStore
from sessionward.throttle import LoginThrottle, address_key

POLICY = ThrottlePolicy()  # account_free=5, address_free=20, base 2 s, max 15 min, window 24 h
VICTIM = "victim"
ATTACKER = "203.0.113.66"
HOME = "198.51.100.7"


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SessionStore]:
    if request.param == "sqlite":
        s: SessionStore = SQLStore.from_url(f"sqlite:///{tmp_path / 'throttle.db'}")
    else:
        from sessionward.stores.redis import RedisStore

        s = RedisStore.from_url(request.getfixturevalue("redis_url"), prefix=request.getfixturevalue("redis_prefix"))
    yield s
    s.close()


@pytest.fixture
def throttle(store: SQLStore, clock: ManualClock) -> LoginThrottle:
    return LoginThrottle(store, POLICY, clock)


def allowed(t: LoginThrottle, username: str, ip: str) -> bool:
    try:
        t.check(username, ip)
    except Throttled:
        return False
    return True


def fail_until_throttled(t: LoginThrottle, username: str, ip: str, limit: int = 1000) -> int:
    n = 0
    while allowed(t, username, ip) and n < limit:
        t.failed(username, ip)
        n += 1
    return n


# -- per account ---------------------------------------------------------------------------------


def test_free_failures_then_backoff(throttle: LoginThrottle) -> None:
    for _ in range(POLICY.account_free):
        throttle.check(VICTIM, ATTACKER)
        assert throttle.failed(VICTIM, ATTACKER) == 0
    throttle.check(VICTIM, ATTACKER)
    assert throttle.failed(VICTIM, ATTACKER) == 2  # the first throttled failure: base_backoff
    with pytest.raises(Throttled) as exc:
        throttle.check(VICTIM, ATTACKER)
    assert exc.value.retry_after == 2 and exc.value.retry_after > 0
    assert "2 seconds" in str(exc.value)


def test_backoff_doubles_from_the_last_failure(throttle: LoginThrottle, clock: ManualClock) -> None:
    for _ in range(POLICY.account_free):
        throttle.failed(VICTIM, ATTACKER)
    waits = []
    for _ in range(6):
        waits.append(throttle.failed(VICTIM, ATTACKER))
        assert not allowed(throttle, VICTIM, ATTACKER)
        clock.advance(waits[-1] - 0.5)
        assert not allowed(throttle, VICTIM, ATTACKER)
        clock.advance(0.5)
        assert allowed(throttle, VICTIM, ATTACKER)
    assert waits == [2, 4, 8, 16, 32, 64]


def test_A3_max_backoff_caps_however_many_failures(throttle: LoginThrottle, clock: ManualClock) -> None:
    for _ in range(300):
        throttle.failed(VICTIM, ATTACKER)
    with pytest.raises(Throttled) as exc:
        throttle.check(VICTIM, ATTACKER)
    assert exc.value.retry_after == POLICY.max_backoff
    clock.advance(POLICY.max_backoff)
    assert allowed(throttle, VICTIM, ATTACKER)
    assert allowed(throttle, VICTIM, HOME)


def test_unknown_and_known_usernames_count_alike(throttle: LoginThrottle) -> None:
    """The throttle never consults the users table: a made-up name is throttled exactly like a real one."""
    a = [throttle.failed("no-such-user", "192.0.2.1") for _ in range(8)]
    b = [throttle.failed(VICTIM, "192.0.2.2") for _ in range(8)]
    assert a == b


def test_account_key_is_normalized(throttle: LoginThrottle) -> None:
    for name in ["Victim", "VICTIM", "victim", "\uff36ictim", "Victim", "victim"]:
        throttle.failed(name, ATTACKER)
    with pytest.raises(Throttled):
        throttle.check("vIcTiM", ATTACKER)


def test_success_resets_the_account_but_not_the_address(throttle: LoginThrottle) -> None:
    for i in range(POLICY.address_free - 1):
        throttle.failed(f"user{i}", ATTACKER)
    for _ in range(POLICY.account_free + 2):
        throttle.failed(VICTIM, HOME)
    assert not allowed(throttle, VICTIM, HOME)
    throttle.succeeded(VICTIM, HOME)
    assert allowed(throttle, VICTIM, HOME)
    # an attacker who logs in to an account of their own does not clear their address's record
    throttle.failed("user0", ATTACKER)
    throttle.failed("user0", ATTACKER)
    throttle.succeeded("mine", ATTACKER)
    assert not allowed(throttle, "anyone", ATTACKER)


def test_counters_restart_after_the_window(throttle: LoginThrottle, clock: ManualClock) -> None:
    for _ in range(POLICY.account_free):
        throttle.failed(VICTIM, ATTACKER)
    clock.advance(POLICY.window + 1)
    for _ in range(POLICY.account_free):
        assert throttle.failed(VICTIM, ATTACKER) == 0


# -- per client address --------------------------------------------------------------------------


def test_one_address_across_many_usernames_is_throttled(throttle: LoginThrottle, clock: ManualClock) -> None:
    for i in range(POLICY.address_free):
        throttle.check(f"spray{i}", ATTACKER)
        throttle.failed(f"spray{i}", ATTACKER)
    assert allowed(throttle, "spray-next", ATTACKER)
    throttle.failed("spray-next", ATTACKER)
    with pytest.raises(Throttled) as exc:
        throttle.check("someone-new", ATTACKER)
    assert exc.value.retry_after == POLICY.base_backoff
    assert allowed(throttle, "someone-new", HOME)  # other clients are not affected
    for i in range(200):
        throttle.failed(f"spray{i}", ATTACKER)
    with pytest.raises(Throttled) as exc:
        throttle.check("x", ATTACKER)
    assert exc.value.retry_after == POLICY.max_backoff


def test_ipv6_is_counted_per_64(throttle: LoginThrottle) -> None:
    for i in range(POLICY.address_free + 1):
        throttle.failed(f"u{i}", f"2001:db8:1:2::{i:x}")
    assert not allowed(throttle, "other", "2001:db8:1:2:ffff:ffff:ffff:ffff")
    assert allowed(throttle, "other", "2001:db8:1:3::1")


def test_address_keys() -> None:
    assert address_key("192.0.2.1") == "ip:192.0.2.1"
    assert address_key("::ffff:192.0.2.1") == "ip:192.0.2.1"
    assert address_key("2001:DB8::1") == "ip:2001:db8::/64"
    assert address_key("fe80::1%eth0") == "ip:fe80::/64"
    odd = address_key("not an address\n")
    assert odd.startswith("ip:#") and "\n" not in odd


def test_store_keys_hold_no_username(tmp_path: Path, clock: ManualClock) -> None:
    store = SQLStore.from_url(f"sqlite:///{tmp_path / 'keys.db'}")
    throttle = LoginThrottle(store, POLICY, clock)
    throttle.failed("Sensitive.Name@example.org", ATTACKER)
    throttle.failed("x" * 5000, ATTACKER)  # overlong names still fit the key column
    with store.engine.connect() as conn:
        keys = [r[0] for r in conn.execute(sa.text("SELECT key FROM sw_throttle"))]
    assert len(keys) == 7  # ip + (acct, acctnew, pair) twice
    assert all("sensitive" not in k.lower() and len(k) < 100 for k in keys)
    store.close()


# -- no indefinite lockout -----------------------------------------------------------------------


def test_A3_right_password_from_another_address_after_backoff(throttle: LoginThrottle, clock: ManualClock) -> None:
    n = fail_until_throttled(throttle, VICTIM, ATTACKER)
    assert n == POLICY.account_free + 1
    clock.advance(POLICY.max_backoff)
    throttle.check(VICTIM, HOME)  # no Throttled
    throttle.succeeded(VICTIM, HOME)


def test_A3_attacker_retrying_every_max_backoff_never_locks_the_victim_out(
    throttle: LoginThrottle, clock: ManualClock
) -> None:
    """With only an account counter this attack keeps the account in backoff for ever."""
    for _ in range(40):
        throttle.failed(VICTIM, ATTACKER)
    for _ in range(96):  # a day of one failure every max_backoff from the attacker
        clock.advance(POLICY.max_backoff)
        throttle.check(VICTIM, ATTACKER)
        throttle.failed(VICTIM, ATTACKER)
        assert not allowed(throttle, VICTIM, ATTACKER)  # the attacker stays throttled
        clock.advance(1)
        assert allowed(throttle, VICTIM, HOME)  # the victim does not


def test_many_addresses_are_throttled_per_account_and_released_after_max_backoff(
    throttle: LoginThrottle, clock: ManualClock
) -> None:
    """A distributed guesser (one try per fresh address) is still paced per account, and once it stops
    nobody waits longer than max_backoff."""
    tried = 0
    for i in range(POLICY.account_free + 1):
        throttle.failed(VICTIM, f"10.0.0.{i}")
        tried += 1
    with pytest.raises(Throttled):
        throttle.check(VICTIM, "10.0.1.1")  # a fresh address now has to wait too
    with pytest.raises(Throttled):
        throttle.check(VICTIM, HOME)
    for i in range(100):
        throttle.failed(VICTIM, f"10.1.{i // 250}.{i % 250}")
    with pytest.raises(Throttled) as exc:
        throttle.check(VICTIM, HOME)
    assert exc.value.retry_after <= POLICY.max_backoff
    clock.advance(POLICY.max_backoff)
    assert allowed(throttle, VICTIM, HOME)


def test_guessing_budget_per_account_is_bounded_whatever_the_number_of_addresses(
    throttle: LoginThrottle, clock: ManualClock
) -> None:
    """Two hours of 100 addresses each guessing whenever allowed (checked every 5 minutes): the account
    sees a few dozen guesses, not the ~2000 the per-address limits alone would let through."""
    addresses = [f"10.0.{i // 250}.{i % 250}" for i in range(100)]
    guesses = 0
    for _round in range(24):
        for ip in addresses:
            if allowed(throttle, VICTIM, ip):
                throttle.failed(VICTIM, ip)
                guesses += 1
        clock.advance(300)
    assert guesses < 40, guesses
