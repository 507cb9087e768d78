"""A3/A6: throttling per account and per client address on the real stores (SQLite in tmp_path, Redis,
PostgreSQL), with a manual clock; an attacker can neither brute-force freely nor lock a victim out
indefinitely, and concurrent attempts are decided exactly like sequential ones.

`fail(...)` is what the Authenticator does for a wrong password: `attempt()` (counted before the check) and
no `succeeded()`. It returns the wait the address then has."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from sessionward.clock import ManualClock
from sessionward.config import ThrottlePolicy
from sessionward.exceptions import Throttled
from sessionward.stores.protocol import SessionStore
from sessionward.stores.sql import SQLStore
from sessionward.throttle import LoginThrottle, address_key

POLICY = ThrottlePolicy()  # account_free=5, address_free=20, base 2 s, max 15 min, window 24 h
VICTIM = "victim"
ATTACKER = "203.0.113.66"
HOME = "198.51.100.7"


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis),
                        pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SessionStore]:
    if request.param == "sqlite":
        s: SessionStore = SQLStore.from_url(f"sqlite:///{tmp_path / 'throttle.db'}")
    elif request.param == "postgres":
        s = SQLStore.from_url(request.getfixturevalue("postgres_url"))  # this run's own database
        with s.engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM sw_throttle"))
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


def fail(t: LoginThrottle, username: str, ip: str) -> int:
    """One wrong password: the attempt is counted (raises `Throttled` if refused); returns the wait after it."""
    t.attempt(username, ip)
    return t.retry_after(username, ip)


def fail_until_throttled(t: LoginThrottle, username: str, ip: str, limit: int = 1000) -> int:
    n = 0
    while n < limit:
        try:
            t.attempt(username, ip)
        except Throttled:
            return n
        n += 1
    return n


def fail_for(t: LoginThrottle, clock: ManualClock, username: str, ip: str, failures: int) -> None:
    """`failures` counted failures, waiting out each backoff (refused attempts do not count)."""
    for _ in range(failures):
        clock.advance(t.retry_after(username, ip))
        t.attempt(username, ip)


# -- per account ---------------------------------------------------------------------------------


def test_free_failures_then_backoff(throttle: LoginThrottle) -> None:
    for _ in range(POLICY.account_free):
        assert fail(throttle, VICTIM, ATTACKER) == 0
    assert fail(throttle, VICTIM, ATTACKER) == 2  # the first throttled failure: base_backoff
    with pytest.raises(Throttled) as exc:
        throttle.attempt(VICTIM, ATTACKER)
    assert exc.value.retry_after == 2 and exc.value.retry_after > 0
    assert "2 seconds" in str(exc.value)


def test_backoff_doubles_from_the_last_failure(throttle: LoginThrottle, clock: ManualClock) -> None:
    for _ in range(POLICY.account_free):
        fail(throttle, VICTIM, ATTACKER)
    waits = []
    for _ in range(6):
        waits.append(fail(throttle, VICTIM, ATTACKER))
        assert not allowed(throttle, VICTIM, ATTACKER)
        clock.advance(waits[-1] - 0.5)
        assert not allowed(throttle, VICTIM, ATTACKER)
        clock.advance(0.5)
        assert allowed(throttle, VICTIM, ATTACKER)
    assert waits == [2, 4, 8, 16, 32, 64]


def test_A3_max_backoff_caps_however_many_failures(throttle: LoginThrottle, clock: ManualClock) -> None:
    fail_for(throttle, clock, VICTIM, ATTACKER, 20)  # 2**14 * 2 s of backoff uncapped
    with pytest.raises(Throttled) as exc:
        throttle.attempt(VICTIM, ATTACKER)
    assert exc.value.retry_after == POLICY.max_backoff
    clock.advance(POLICY.max_backoff)
    assert allowed(throttle, VICTIM, ATTACKER)
    assert allowed(throttle, VICTIM, HOME)


def test_A6_refused_attempts_are_not_counted_and_never_extend_the_backoff(
    throttle: LoginThrottle, clock: ManualClock
) -> None:
    """Hammering a throttled account changes nothing: the wait runs from the last *counted* failure."""
    fail_for(throttle, clock, VICTIM, ATTACKER, POLICY.account_free + 3)  # backoff 8 s
    for _ in range(8):
        for _ in range(50):
            with pytest.raises(Throttled):
                throttle.attempt(VICTIM, ATTACKER)
        clock.advance(1)
    assert allowed(throttle, VICTIM, ATTACKER)
    assert fail(throttle, VICTIM, ATTACKER) == 16  # one more counted failure, not 400 more


def test_unknown_and_known_usernames_count_alike(throttle: LoginThrottle, clock: ManualClock) -> None:
    """The throttle never consults the users table: a made-up name is throttled exactly like a real one."""
    def waits(name: str, ip: str) -> list[int]:
        out = []
        for _ in range(8):
            out.append(fail(throttle, name, ip))
            clock.advance(out[-1])
        return out

    assert waits("no-such-user", "192.0.2.1") == waits(VICTIM, "192.0.2.2")


def test_account_key_is_normalized(throttle: LoginThrottle) -> None:
    for name in ["Victim", "VICTIM", "victim", "\uff36ictim", "Victim", "victim"]:
        fail(throttle, name, ATTACKER)
    with pytest.raises(Throttled):
        throttle.check("vIcTiM", ATTACKER)


def test_success_resets_the_account_but_not_the_address(throttle: LoginThrottle, clock: ManualClock) -> None:
    for i in range(POLICY.address_free - 1):
        fail(throttle, f"user{i}", ATTACKER)
    fail_for(throttle, clock, VICTIM, HOME, POLICY.account_free + 2)
    assert not allowed(throttle, VICTIM, HOME)
    clock.advance(throttle.retry_after(VICTIM, HOME))
    throttle.succeeded(throttle.attempt(VICTIM, HOME))
    assert throttle.retry_after(VICTIM, HOME) == 0
    fail_for(throttle, clock, VICTIM, HOME, POLICY.account_free)  # a whole fresh allowance
    assert allowed(throttle, VICTIM, HOME)
    # an attacker who logs in to an account of their own does not clear their address's record
    fail(throttle, "user0", ATTACKER)  # the address's 20th failure: its whole free allowance
    throttle.succeeded(throttle.attempt("mine", ATTACKER))
    fail(throttle, "user0", ATTACKER)  # the 21st, had the success not cleared the first 20
    assert not allowed(throttle, "anyone", ATTACKER)


def test_A6_a_success_takes_its_own_attempt_back_off_the_address(throttle: LoginThrottle) -> None:
    """The attempt was counted on the address before the check; a right password un-counts it, so an
    address full of people who log in successfully is never throttled for it."""
    for _ in range(3 * POLICY.address_free):
        throttle.succeeded(throttle.attempt("someone", ATTACKER))
    assert allowed(throttle, "anyone", ATTACKER)
    assert throttle.retry_after("anyone", ATTACKER) == 0


def test_counters_restart_after_the_window(throttle: LoginThrottle, clock: ManualClock) -> None:
    for _ in range(POLICY.account_free):
        fail(throttle, VICTIM, ATTACKER)
    clock.advance(POLICY.window + 1)
    for _ in range(POLICY.account_free):
        assert fail(throttle, VICTIM, ATTACKER) == 0


# -- per client address --------------------------------------------------------------------------


def test_one_address_across_many_usernames_is_throttled(throttle: LoginThrottle, clock: ManualClock) -> None:
    for i in range(POLICY.address_free):
        fail(throttle, f"spray{i}", ATTACKER)
    assert allowed(throttle, "spray-next", ATTACKER)
    fail(throttle, "spray-next", ATTACKER)
    with pytest.raises(Throttled) as exc:
        throttle.attempt("someone-new", ATTACKER)
    assert exc.value.retry_after == POLICY.base_backoff
    assert allowed(throttle, "someone-new", HOME)  # other clients are not affected
    for i in range(12):
        clock.advance(throttle.retry_after(f"spray-more{i}", ATTACKER))
        fail(throttle, f"spray-more{i}", ATTACKER)
    with pytest.raises(Throttled) as exc:
        throttle.attempt("x", ATTACKER)
    assert exc.value.retry_after == POLICY.max_backoff


def test_ipv6_is_counted_per_64(throttle: LoginThrottle) -> None:
    for i in range(POLICY.address_free + 1):
        fail(throttle, f"u{i}", f"2001:db8:1:2::{i:x}")
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
    fail(throttle, "Sensitive.Name@example.org", ATTACKER)
    fail(throttle, "x" * 5000, ATTACKER)  # overlong names still fit the key column
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
    throttle.succeeded(throttle.attempt(VICTIM, HOME))  # no Throttled


def test_A3_attacker_retrying_every_max_backoff_never_locks_the_victim_out(
    throttle: LoginThrottle, clock: ManualClock
) -> None:
    """With only an account counter this attack keeps the account in backoff for ever."""
    fail_for(throttle, clock, VICTIM, ATTACKER, 20)
    for _ in range(96):  # a day of one failure every max_backoff from the attacker
        clock.advance(POLICY.max_backoff)
        fail(throttle, VICTIM, ATTACKER)
        for _ in range(5):  # and hammering in between: refused, not counted
            with pytest.raises(Throttled):
                throttle.attempt(VICTIM, ATTACKER)
        clock.advance(1)
        assert allowed(throttle, VICTIM, HOME)  # the victim is not held back


def test_many_addresses_are_throttled_per_account_and_released_after_max_backoff(
    throttle: LoginThrottle, clock: ManualClock
) -> None:
    """A distributed guesser (one try per fresh address) is still paced per account, and once it stops
    nobody waits longer than max_backoff."""
    for i in range(POLICY.account_free + 1):
        fail(throttle, VICTIM, f"10.0.0.{i}")
    with pytest.raises(Throttled):
        throttle.attempt(VICTIM, "10.0.1.1")  # a fresh address now has to wait too
    with pytest.raises(Throttled):
        throttle.check(VICTIM, HOME)
    for i in range(100):
        ip = f"10.1.{i // 250}.{i % 250}"
        clock.advance(throttle.retry_after(VICTIM, ip))
        fail(throttle, VICTIM, ip)
    with pytest.raises(Throttled) as exc:
        throttle.check(VICTIM, HOME)
    assert exc.value.retry_after <= POLICY.max_backoff
    clock.advance(POLICY.max_backoff)
    assert allowed(throttle, VICTIM, HOME)


def test_guessing_budget_per_account_is_bounded_whatever_the_number_of_addresses(
    throttle: LoginThrottle, clock: ManualClock
) -> None:
    """Two hours of 100 addresses each guessing whenever allowed (tried every 5 minutes): the account
    sees a few dozen guesses, not the ~2000 the per-address limits alone would let through."""
    addresses = [f"10.0.{i // 250}.{i % 250}" for i in range(100)]
    guesses = 0
    for _round in range(24):
        for ip in addresses:
            try:
                throttle.attempt(VICTIM, ip)
            except Throttled:
                continue
            guesses += 1
        clock.advance(300)
    assert guesses < 40, guesses
