"""The Authenticator: A1 rehash on login, A3 throttling end to end, A4 no user enumeration (message,
type, throttling and timing), A5 security events without secrets, and failing closed."""

from __future__ import annotations

import collections
import contextlib
import logging
import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import argon2
import pytest
import sqlalchemy as sa
from _services import free_port
from stores.contract import run_concurrently

from sessionward import db
from sessionward.auth import MAX_PASSWORD_INPUT, MAX_USERNAME_INPUT, Authenticator
from sessionward.clock import ManualClock
from sessionward.config import ThrottlePolicy
from sessionward.exceptions import InvalidCredentials, StoreUnavailable, Throttled
from sessionward.passwords import Argon2idHasher, HashGate, PasswordPolicy
from sessionward.stores.base import ThrottleState
from sessionward.stores.protocol import SessionStore
from sessionward.stores.redis import RedisStore
from sessionward.stores.sql import SQLStore
from sessionward.throttle import LoginThrottle
from sessionward.users import User, UserStore

PW = "mauve-Heron-parsnip-81"
FAST = Argon2idHasher.insecure_for_tests()
DEFAULT_POLICY = ThrottlePolicy()  # frozen: one instance serves every default
LENIENT = ThrottlePolicy(account_free=10_000, address_free=10_000)
IP = "192.0.2.10"
OTHER_IP = "198.51.100.20"


class SpyHasher(Argon2idHasher):
    """A fast hasher that records what it was asked to do."""

    calls: list[tuple[str, int]]

    @classmethod
    def make(cls) -> SpyHasher:
        spy = cls.__new__(cls)
        spy._setup(64, 1, 1, 16, 16)
        spy.calls = []
        return spy

    def hash(self, password: str) -> str:
        self.calls.append(("hash", len(password)))
        return super().hash(password)

    def verify(self, password_hash: str, password: str) -> bool:
        self.calls.append(("verify", len(password)))
        return super().verify(password_hash, password)

    def dummy_verify(self, password: str) -> None:
        self.calls.append(("dummy_verify", len(password) if isinstance(password, str) else -1))
        super().dummy_verify(password)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[sa.Engine]:
    eng = db.make_engine(f"sqlite:///{tmp_path / 'auth.db'}")
    yield eng
    eng.dispose()


@pytest.fixture
def store(engine: sa.Engine) -> SQLStore:
    return SQLStore(engine)


@pytest.fixture
def users(engine: sa.Engine, clock: ManualClock) -> UserStore:
    return UserStore(engine, hasher=FAST, policy=PasswordPolicy(), clock=clock)


@pytest.fixture
def alice(users: UserStore) -> User:
    return users.create("Alice", PW)


def make_auth(
    users: UserStore,
    store: SQLStore,
    clock: ManualClock,
    *,
    hasher: Argon2idHasher = FAST,
    policy: ThrottlePolicy = DEFAULT_POLICY,
) -> Authenticator:
    return Authenticator(users=users, hasher=hasher, throttle=LoginThrottle(store, policy, clock), clock=clock)


@pytest.fixture
def auth(users: UserStore, store: SQLStore, clock: ManualClock) -> Authenticator:
    return make_auth(users, store, clock)


def refusal(auth: Authenticator, username: str, password: str, ip: str = IP) -> InvalidCredentials:
    with pytest.raises(InvalidCredentials) as exc:
        auth.authenticate(username, password, ip=ip)
    return exc.value


# -- the basics ------------------------------------------------------------------------------------


def test_right_password_logs_in(auth: Authenticator, alice: User) -> None:
    assert auth.authenticate("alice", PW, ip=IP) == alice
    assert auth.authenticate("ALICE", PW, ip=IP).id == alice.id


def test_A4_unknown_wrong_disabled_and_malformed_look_the_same(
    auth: Authenticator, users: UserStore, alice: User
) -> None:
    users.create("bob", PW)
    users.set_disabled(users.get_by_username("bob").id)  # type: ignore[union-attr]
    answers = [
        refusal(auth, "nobody", PW),
        refusal(auth, "alice", PW + "!"),
        refusal(auth, "alice", ""),
        refusal(auth, "bob", PW),  # disabled, right password
        refusal(auth, "bob", "wrong"),
        refusal(auth, "u" * (MAX_USERNAME_INPUT + 1), PW),
        refusal(auth, "alice", "p" * (MAX_PASSWORD_INPUT + 1)),
        refusal(auth, None, PW),  # type: ignore[arg-type]
    ]
    assert {(type(a), str(a), a.code) for a in answers} == {
        (InvalidCredentials, "Invalid username or password.", "invalid_credentials")
    }


def test_disabled_account_still_verifies_then_refuses(users: UserStore, store: SQLStore, clock: ManualClock) -> None:
    spy = SpyHasher.make()
    u = users.create("carol", PW)
    users.set_disabled(u.id)
    auth = make_auth(users, store, clock, hasher=spy)
    refusal(auth, "carol", PW)
    assert [c[0] for c in spy.calls] == ["verify"]


def test_unknown_user_costs_a_dummy_verify(users: UserStore, store: SQLStore, clock: ManualClock) -> None:
    spy = SpyHasher.make()
    auth = make_auth(users, store, clock, hasher=spy)
    refusal(auth, "ghost", PW)
    assert spy.calls == [("dummy_verify", len(PW))]


def test_overlong_inputs_are_refused_without_hashing_them(
    users: UserStore, store: SQLStore, clock: ManualClock, alice: User
) -> None:
    spy = SpyHasher.make()
    auth = make_auth(users, store, clock, hasher=spy)
    refusal(auth, "alice", PW + "x" * 5000)
    refusal(auth, "a" * 100_000, PW)
    assert spy.calls == [("dummy_verify", 0), ("dummy_verify", 0)]  # same work, nothing long hashed
    # exactly at the limits the inputs are handled normally
    refusal(auth, "alice", "p" * MAX_PASSWORD_INPUT)
    assert spy.calls[-1] == ("verify", MAX_PASSWORD_INPUT)


# -- A1: rehash on login ---------------------------------------------------------------------------


def test_A1_parameter_change_rehashes_on_login(
    users: UserStore, store: SQLStore, clock: ManualClock, alice: User
) -> None:
    old = users.get(alice.id).password_hash  # type: ignore[union-attr]
    assert argon2.extract_parameters(old).memory_cost < 19456
    auth = make_auth(users, store, clock, hasher=Argon2idHasher())  # the real defaults
    refusal(auth, "alice", "not the password")
    assert users.get(alice.id).password_hash == old  # type: ignore[union-attr]  # no rehash on failure
    logged_in = auth.authenticate("alice", PW, ip=IP)
    new = users.get(alice.id).password_hash  # type: ignore[union-attr]
    assert new == logged_in.password_hash != old
    assert new.startswith("$argon2id$")
    params = argon2.extract_parameters(new)
    assert params.memory_cost >= 19456 and params.time_cost >= 2 and params.parallelism >= 1
    assert auth.authenticate("alice", PW, ip=IP).password_hash == new  # current parameters: left alone
    assert users.get(alice.id).password_changed_at == alice.password_changed_at  # type: ignore[union-attr]


# -- A3: throttling end to end ---------------------------------------------------------------------


def test_A3_failures_lead_to_throttled_then_the_right_password_works_from_elsewhere(
    auth: Authenticator, alice: User, clock: ManualClock
) -> None:
    policy = ThrottlePolicy()
    for _ in range(policy.account_free + 1):
        refusal(auth, "alice", "guess-guess-guess")
    with pytest.raises(Throttled) as exc:
        auth.authenticate("alice", PW, ip=IP)  # even the right password is not checked now
    assert exc.value.retry_after > 0
    clock.advance(exc.value.retry_after)
    assert auth.authenticate("alice", PW, ip=OTHER_IP) == alice


def test_A3_victim_gets_in_while_the_attacker_keeps_trying(auth: Authenticator, alice: User,
                                                           clock: ManualClock) -> None:
    policy = ThrottlePolicy()
    for _ in range(40):
        with contextlib.suppress(InvalidCredentials, Throttled):
            auth.authenticate("alice", "guess-guess-guess", ip=IP)
    for _ in range(50):
        clock.advance(policy.max_backoff)
        with contextlib.suppress(InvalidCredentials, Throttled):
            auth.authenticate("alice", "guess-guess-guess", ip=IP)
        clock.advance(1)
        with pytest.raises(Throttled):
            auth.authenticate("alice", PW, ip=IP)  # the attacker's address stays throttled
        assert auth.authenticate("alice", PW, ip=OTHER_IP) == alice


def test_A4_unknown_user_is_throttled_like_a_real_one(auth: Authenticator, alice: User) -> None:
    def attempts_until_throttled(username: str, ip: str) -> int:
        for n in range(1, 50):
            try:
                auth.authenticate(username, "guess-guess-guess", ip=ip)
            except InvalidCredentials:
                continue
            except Throttled:
                return n
        raise AssertionError("never throttled")

    assert attempts_until_throttled("alice", IP) == attempts_until_throttled("nobody", OTHER_IP)


def test_disabled_account_with_right_password_is_throttled_like_a_wrong_one(
    auth: Authenticator, users: UserStore, alice: User
) -> None:
    users.set_disabled(alice.id)
    for _ in range(ThrottlePolicy().account_free + 1):
        refusal(auth, "alice", PW)
    with pytest.raises(Throttled):
        auth.authenticate("alice", PW, ip=IP)


def test_A3_password_spraying_from_one_address_is_throttled(auth: Authenticator, alice: User) -> None:
    for i in range(ThrottlePolicy().address_free + 1):
        refusal(auth, f"user{i}", "Summer2024!")
    with pytest.raises(Throttled):
        auth.authenticate("alice", PW, ip=IP)
    assert auth.authenticate("alice", PW, ip=OTHER_IP) == alice


# -- A6: concurrent bursts are decided like sequential attempts --------------------------------------


class CountingHasher(Argon2idHasher):
    """A hasher slow enough (a few ms, GIL released) for attempts to overlap, counting what it verified."""

    @classmethod
    def make(cls) -> CountingHasher:
        self = cls.__new__(cls)
        # a gate wide enough for every burst here: these tests count throttle decisions, not the O7 bound
        self._setup(4096, 2, 1, 16, 16, gate=HashGate(4, max_waiting=256, max_wait=60))
        self.checked = 0
        self._count = threading.Lock()
        return self

    def _seen(self) -> None:
        with self._count:
            self.checked += 1

    def verify(self, password_hash: str, password: str) -> bool:
        self._seen()
        return super().verify(password_hash, password)

    def dummy_verify(self, password: str) -> None:
        self._seen()
        super().dummy_verify(password)


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis),
                        pytest.param("postgres", marks=pytest.mark.postgres)])
def any_store(request: pytest.FixtureRequest, store: SQLStore) -> Iterator[SessionStore]:
    """The throttle's store: SQLite (the `store` fixture), Redis or PostgreSQL, empty."""
    if request.param == "sqlite":
        yield store
        return
    if request.param == "redis":
        other: SessionStore = RedisStore.from_url(request.getfixturevalue("redis_url"),
                                                  prefix=request.getfixturevalue("redis_prefix"))
    else:
        other = SQLStore.from_url(request.getfixturevalue("postgres_url"))  # this run's own database
        with other.engine.begin() as conn:  # type: ignore[attr-defined]
            conn.execute(sa.text("DELETE FROM sw_throttle"))
    yield other
    other.close()


def burst(auth: Authenticator, attempts: list[tuple[str, str]]) -> collections.Counter[str]:
    """Every (username, password) at once from IP, one thread each; how many got which answer."""
    def one(i: int) -> str:
        try:
            auth.authenticate(attempts[i][0], attempts[i][1], ip=IP)
        except InvalidCredentials:
            return "checked"
        except Throttled as exc:
            assert exc.retry_after > 0
            return "refused"
        return "ok"

    return collections.Counter(run_concurrently(len(attempts), one))


def test_A6_concurrent_burst_on_a_fresh_account_checks_only_the_allowance(
    users: UserStore, alice: User, any_store: SessionStore, clock: ManualClock
) -> None:
    """The free failures and the one attempt that starts the backoff are checked; every other attempt of the
    burst is refused without a password check. (Before A6 every attempt read the counters before any
    failure was written, so nearly the whole burst was checked.)"""
    hasher, policy = CountingHasher.make(), ThrottlePolicy()
    auth = make_auth(users, any_store, clock, hasher=hasher, policy=policy)  # type: ignore[arg-type]
    n = 3 * (policy.account_free + 1)
    answers = burst(auth, [("alice", f"wrong guess {i}") for i in range(n)])
    assert answers == {"checked": policy.account_free + 1, "refused": n - policy.account_free - 1}, answers
    assert hasher.checked == policy.account_free + 1


def test_A6_concurrent_burst_from_one_address_checks_only_the_address_allowance(
    users: UserStore, any_store: SessionStore, clock: ManualClock
) -> None:
    """Password spraying in one burst: many usernames (none of them real) from one address."""
    hasher, policy = CountingHasher.make(), ThrottlePolicy()
    auth = make_auth(users, any_store, clock, hasher=hasher, policy=policy)  # type: ignore[arg-type]
    n = policy.address_free + 15
    answers = burst(auth, [(f"sprayed{i}", "Summer2024!") for i in range(n)])
    assert answers == {"checked": policy.address_free + 1, "refused": n - policy.address_free - 1}, answers
    assert hasher.checked == policy.address_free + 1


def test_A6_burst_of_right_passwords_leaves_no_count_behind(
    users: UserStore, any_store: SessionStore, clock: ManualClock
) -> None:
    """Each attempt is counted before its check and un-counted by its success: a burst of logins with the
    right passwords from one address (people behind one NAT) all get in and leave no count behind."""
    for i in range(12):
        users.create(f"colleague{i}", PW)
    auth = make_auth(users, any_store, clock, hasher=CountingHasher.make())  # type: ignore[arg-type]
    answers = burst(auth, [(f"colleague{i}", PW) for i in range(12)])
    assert answers == {"ok": 12}, answers
    keys = ["ip:" + IP] + [k for i in range(12) for k in auth._throttle._keys(f"colleague{i}", IP)[1:]]
    assert any_store.throttle_read(keys, now=clock.now(), window=ThrottlePolicy().window) == [ThrottleState()] * 37


# -- A4: timing --------------------------------------------------------------------------------------


def _medians(auth: Authenticator, rounds: int = 30) -> tuple[float, float]:
    unknown: list[float] = []
    wrong: list[float] = []
    for i in range(rounds):  # interleaved, so machine noise hits both alike
        for name, bucket in ((f"nobody{i}", unknown), ("alice", wrong)):
            t0 = time.perf_counter()
            with pytest.raises(InvalidCredentials):
                auth.authenticate(name, "guess-guess-guess", ip=IP)
            bucket.append(time.perf_counter() - t0)
    return statistics.median(unknown), statistics.median(wrong)


@pytest.fixture
def timed(engine: sa.Engine, store: SQLStore, clock: ManualClock) -> Authenticator:
    # Cheap enough for the test, dear enough (~5-10 ms) to dominate the database round trips.
    hasher = Argon2idHasher.insecure_for_tests(memory_cost=8192, time_cost=2)
    users = UserStore(engine, hasher=hasher, policy=PasswordPolicy(), clock=clock)
    users.create("alice", PW)
    return make_auth(users, store, clock, hasher=hasher, policy=LENIENT)


def test_A4_unknown_user_and_wrong_password_take_the_same_time(timed: Authenticator) -> None:
    _medians(timed, rounds=3)  # warm up
    unknown, wrong = _medians(timed)
    assert 1 / 1.5 < unknown / wrong < 1.5, (unknown, wrong)


def test_timing_test_detects_a_missing_dummy_verify(timed: Authenticator, monkeypatch: pytest.MonkeyPatch) -> None:
    """The comparison above is sharp enough: without the dummy verify, unknown users answer much faster."""
    monkeypatch.setattr(timed._hasher, "dummy_verify", lambda password: None)
    _medians(timed, rounds=3)
    unknown, wrong = _medians(timed)
    assert unknown / wrong < 1 / 1.5, (unknown, wrong)


# -- A5: security events -----------------------------------------------------------------------------


def test_A5_events_are_structured_and_hold_no_secrets(
    auth: Authenticator, alice: User, caplog: pytest.LogCaptureFixture
) -> None:
    typed_into_username = "my-Secret-pass-1234"  # people do type passwords into the username field
    with caplog.at_level(logging.INFO, logger="sessionward.security"):
        auth.authenticate("alice", PW, ip=IP)
        refusal(auth, "alice", "wrong-Horse-77")
        refusal(auth, typed_into_username, PW)
        for _ in range(ThrottlePolicy().account_free):
            refusal(auth, "alice", "wrong-Horse-77")
        with pytest.raises(Throttled):
            auth.authenticate("alice", "wrong-Horse-77", ip=IP)
    records = [r for r in caplog.records if r.name == "sessionward.security"]
    events = [(r.event, r.fields.get("reason")) for r in records]  # type: ignore[attr-defined]
    assert events[:3] == [("login_succeeded", None), ("login_failed", "bad_password"), ("login_failed", "unknown_user")]
    assert events[-1] == ("login_throttled", None)
    ok = records[0].fields  # type: ignore[attr-defined]
    assert ok["user_id"] == alice.id and ok["username"] == "Alice" and ok["ip"] == IP
    assert records[-1].fields["retry_after"] > 0  # type: ignore[attr-defined]
    everything = "\n".join(r.getMessage() + repr(r.fields) for r in records)  # type: ignore[attr-defined]
    for secret in (PW, "wrong-Horse-77", typed_into_username, alice.password_hash):
        assert secret not in everything
    assert records[2].fields["username_digest"]  # type: ignore[attr-defined]


def test_log_lines_cannot_be_forged_through_the_address(
    auth: Authenticator, alice: User, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="sessionward.security"):
        refusal(auth, "alice", "nope-nope-nope", ip="1.2.3.4\nlogin_succeeded user=admin")
    assert "\n" not in caplog.records[-1].getMessage()


# -- failing closed ----------------------------------------------------------------------------------


def test_store_down_is_store_unavailable_never_access(users: UserStore, alice: User, clock: ManualClock) -> None:
    dead = db.make_engine(f"postgresql://postgres@127.0.0.1:{free_port()}/none", connect_timeout=1)
    try:
        auth = make_auth(users, SQLStore(dead, create_schema=False), clock)
        with pytest.raises(StoreUnavailable):
            auth.authenticate("alice", PW, ip=IP)
    finally:
        dead.dispose()
