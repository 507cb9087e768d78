"""A1 (argon2id, OWASP parameters or stronger, rehash) and A2 (length, no truncation, common passwords)."""

from __future__ import annotations

import logging
import threading

import argon2
import pytest

from sessionward.exceptions import ConfigError, Overloaded, PasswordPolicyError
from sessionward.passwords import (
    OWASP_MIN_MEMORY_COST,
    OWASP_MIN_TIME_COST,
    Argon2idHasher,
    HashGate,
    PasswordPolicy,
    common_passwords,
)

BASE = "Tq9-vexing-Wombat-lighthouse-"  # not a common password at any prefix length we use


def pw(n: int) -> str:
    return (BASE * (n // len(BASE) + 1))[:n]


@pytest.fixture(scope="module")
def default_hasher() -> Argon2idHasher:
    return Argon2idHasher()


@pytest.fixture(scope="module")
def fast() -> Argon2idHasher:
    return Argon2idHasher.insecure_for_tests()


# -- A1: the default parameters (real, slow hasher) -----------------------------------------------


def test_A1_default_hash_is_argon2id_with_owasp_parameters_or_stronger(default_hasher: Argon2idHasher) -> None:
    h = default_hasher.hash("correct horse battery staple")
    assert h.startswith("$argon2id$")
    params = argon2.extract_parameters(h)
    assert params.type is argon2.Type.ID
    assert params.memory_cost >= 19456
    assert params.time_cost >= 2
    assert params.parallelism >= 1
    assert params.salt_len >= 16 and params.hash_len >= 16
    assert default_hasher.verify(h, "correct horse battery staple")
    assert not default_hasher.needs_rehash(h)


@pytest.mark.parametrize(
    ("kwargs", "setting"),
    [
        ({"memory_cost": OWASP_MIN_MEMORY_COST - 1}, "PASSWORD_HASH_MEMORY_COST"),
        ({"time_cost": OWASP_MIN_TIME_COST - 1}, "PASSWORD_HASH_TIME_COST"),
        ({"parallelism": 0}, "PASSWORD_HASH_PARALLELISM"),
        ({"hash_len": 8}, "PASSWORD_HASH_LENGTH"),
        ({"salt_len": 8}, "PASSWORD_HASH_SALT_LENGTH"),
        ({"time_cost": True}, "PASSWORD_HASH_TIME_COST"),
    ],
)
def test_parameters_below_owasp_are_refused_at_construction(kwargs: dict[str, int], setting: str) -> None:
    with pytest.raises(ConfigError) as exc:
        Argon2idHasher(**kwargs)
    assert exc.value.setting == setting


def test_owasp_minimum_itself_is_accepted() -> None:
    h = Argon2idHasher(memory_cost=19456, time_cost=2, parallelism=1)
    assert h.parameters.memory_cost == 19456 and h.parameters.time_cost == 2


def test_A1_parameter_change_means_rehash(fast: Argon2idHasher, default_hasher: Argon2idHasher) -> None:
    old = fast.hash("a long enough password")
    assert default_hasher.needs_rehash(old)
    assert default_hasher.verify(old, "a long enough password")  # old hashes keep working until rehashed
    assert not fast.needs_rehash(old)
    assert default_hasher.needs_rehash("not a hash")


# -- verify ----------------------------------------------------------------------------------------


def test_verify_mismatch_and_garbage_are_false(fast: Argon2idHasher, caplog: pytest.LogCaptureFixture) -> None:
    h = fast.hash("right password")
    assert fast.verify(h, "right password")
    assert not fast.verify(h, "wrong password")
    assert not fast.verify(h, "")
    with caplog.at_level(logging.WARNING, logger="sessionward.passwords"):
        assert not fast.verify("$argon2id$garbage", "right password")
        assert not fast.verify("", "right password")
    assert "InvalidHash" in caplog.text
    assert "right password" not in caplog.text


def test_hashes_are_salted(fast: Argon2idHasher) -> None:
    assert fast.hash("same password") != fast.hash("same password")


def test_A2_long_password_is_not_truncated(fast: Argon2idHasher) -> None:
    for n in (72, 128, 200, 1024, 5000):
        p = pw(n)
        h = fast.hash(p)
        assert fast.verify(h, p)
        assert not fast.verify(h, p + "x")
        assert not fast.verify(h, p[:-1])


def test_unicode_is_normalized_and_odd_input_never_raises(fast: Argon2idHasher) -> None:
    h = fast.hash("caf\u00e9 \ufb01ne passphrase")  # precomposed é, ligature ﬁ
    assert fast.verify(h, "cafe\u0301 fine passphrase")  # decomposed é, plain fi: same under NFKC
    lone = "abc\ud800defghij"
    h2 = fast.hash(lone)
    assert fast.verify(h2, lone) and not fast.verify(h2, "abc\ud801defghij")
    assert not fast.verify(h2, None)  # type: ignore[arg-type]
    fast.dummy_verify(lone)
    fast.dummy_verify(None)  # type: ignore[arg-type]


def test_dummy_verify_costs_a_real_verify() -> None:
    """The dummy hash carries the hasher's own parameters (timing is compared end-to-end in test_auth)."""
    h = Argon2idHasher(memory_cost=19456, time_cost=2, parallelism=1)
    assert argon2.extract_parameters(h._dummy_hash) == h.parameters
    assert h.dummy_verify("anything") is None


# -- A2: the policy --------------------------------------------------------------------------------


def test_A2_length_rules() -> None:
    policy = PasswordPolicy()
    with pytest.raises(PasswordPolicyError, match="at least 8"):
        policy.check(pw(7))
    for n in (8, 64, 128):
        assert pw(n) not in common_passwords()
        policy.check(pw(n))
    for n in (129, 200):
        with pytest.raises(PasswordPolicyError, match="at most 128") as exc:
            policy.check(pw(n))
        assert "never shortened" in str(exc.value)
        assert exc.value.field == "password"


@pytest.mark.parametrize(
    "common", ["password", "Password", "PASSWORD", "Password1", "PASSWORD1", "qwertyuiop", "iloveyou", "Iloveyou1"]
)
def test_A2_common_passwords_are_refused_case_insensitively(common: str) -> None:
    with pytest.raises(PasswordPolicyError, match="commonly used"):
        PasswordPolicy().check(common)


def test_common_check_can_be_switched_off() -> None:
    PasswordPolicy(check_common=False).check("Password1")


def test_password_equal_to_username_is_refused() -> None:
    with pytest.raises(PasswordPolicyError, match="same as the username"):
        PasswordPolicy().check("Zebediah-Quux", username="zebediah-quux")
    PasswordPolicy().check("Zebediah-Quux", username="someone-else")


def test_blank_password_is_refused() -> None:
    with pytest.raises(PasswordPolicyError, match="spaces"):
        PasswordPolicy().check(" " * 12)


def test_policy_below_asvs_is_refused() -> None:
    with pytest.raises(ConfigError) as exc:
        PasswordPolicy(min_length=7)
    assert exc.value.setting == "PASSWORD_MIN_LENGTH"
    with pytest.raises(ConfigError) as exc:
        PasswordPolicy(max_length=63)
    assert exc.value.setting == "PASSWORD_MAX_LENGTH"
    PasswordPolicy(min_length=12, max_length=64)


def test_common_list_is_shipped_loaded_once_and_skips_only_comments() -> None:
    words = common_passwords()
    assert words is common_passwords()
    assert len(words) > 19000
    assert "password" in words and "123456" in words
    assert "#1bitch" in words  # real entries that start with "#" are kept
    assert not any(w.startswith("## ") or "Django" in w for w in words)
    assert all(w == w.lower() for w in words if w.isascii())


# -- O7: hashing is bounded per process -----------------------------------------------------------


class _Counting:
    """Wraps the argon2 hasher and records how many calls run at once (real argon2 underneath)."""

    def __init__(self, inner: argon2.PasswordHasher) -> None:
        self.inner, self.now, self.peak = inner, 0, 0
        self.lock = threading.Lock()

    def _enter(self) -> None:
        with self.lock:
            self.now += 1
            self.peak = max(self.peak, self.now)

    def _leave(self) -> None:
        with self.lock:
            self.now -= 1

    def verify(self, *args: object) -> bool:
        self._enter()
        try:
            return self.inner.verify(*args)  # type: ignore[arg-type]
        finally:
            self._leave()

    def hash(self, *args: object) -> str:
        self._enter()
        try:
            return self.inner.hash(*args)  # type: ignore[arg-type]
        finally:
            self._leave()


def test_O7_concurrent_burst_of_hashing_never_exceeds_the_gate() -> None:
    hasher = Argon2idHasher.insecure_for_tests(memory_cost=2048, time_cost=2,
                                               gate=HashGate(2, max_waiting=64, max_wait=60))
    counting = _Counting(hasher._ph)
    hasher._ph = counting  # type: ignore[assignment]
    stored = hasher.hash("a-password-of-some-length")
    start = threading.Barrier(16)

    def work(i: int) -> None:
        start.wait()
        for _ in range(3):
            if i % 3 == 0:
                hasher.dummy_verify("x")
            elif i % 3 == 1:
                hasher.verify(stored, "nope")
            else:
                hasher.hash("another-password")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert counting.peak == 2  # the burst filled the gate, and never went past it
    assert hasher.gate.refused == 0


def test_O7_full_queue_is_refused_with_overloaded_and_retry_after() -> None:
    gate = HashGate(1, max_waiting=0, max_wait=3)
    hasher = Argon2idHasher.insecure_for_tests(gate=gate)
    with gate.slot():  # another sign-in is hashing
        for call in (lambda: hasher.dummy_verify("x"),
                     lambda: hasher.verify("$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA", "x"),
                     lambda: hasher.hash("x")):
            with pytest.raises(Overloaded) as info:
                call()
            assert info.value.retry_after == 3
    assert gate.refused == 3
    hasher.dummy_verify("x")  # free again


def test_O7_a_waiter_gets_its_turn_or_is_refused_after_the_wait() -> None:
    gate = HashGate(1, max_waiting=1, max_wait=0.2)
    hasher = Argon2idHasher.insecure_for_tests(gate=gate)
    release = threading.Event()
    holder = threading.Thread(target=lambda: _hold(gate, release))
    holder.start()
    try:
        with pytest.raises(Overloaded):
            hasher.dummy_verify("x")  # waits 0.2 s for the holder, which does not let go
    finally:
        release.set()
        holder.join()
    assert hasher.verify(hasher.hash("pw-after-the-storm"), "pw-after-the-storm")


def _hold(gate: HashGate, release: threading.Event) -> None:
    with gate.slot():
        release.wait(10)


@pytest.mark.parametrize(("kwargs", "setting"), [
    ({"max_concurrent": 0}, "SESSIONWARD_HASH_CONCURRENCY"),
    ({"max_concurrent": "4"}, "SESSIONWARD_HASH_CONCURRENCY"),
    ({"max_concurrent": 2, "max_waiting": -1}, "SESSIONWARD_HASH_QUEUE"),
    ({"max_concurrent": 2, "max_wait": 0}, "SESSIONWARD_HASH_WAIT"),
])
def test_O7_bad_gate_settings_fail_at_start_up_naming_the_setting(kwargs: dict[str, object], setting: str) -> None:
    with pytest.raises(ConfigError) as info:
        HashGate(**kwargs)  # type: ignore[arg-type]
    assert info.value.setting == setting


@pytest.mark.parametrize(("setting", "value"), [
    ("SESSIONWARD_HASH_CONCURRENCY", "0"),
    ("SESSIONWARD_HASH_CONCURRENCY", "two"),
    ("SESSIONWARD_HASH_CONCURRENCY", "1.5"),
    ("SESSIONWARD_HASH_QUEUE", "-1"),
    ("SESSIONWARD_HASH_WAIT", "0"),
])
def test_O7_bad_hashing_settings_stop_the_service_naming_them(tmp_path: object, setting: str, value: str) -> None:
    from sessionward.app import create_app

    with pytest.raises(ConfigError) as info:
        create_app(tmp_path / "instance", config={setting: value})  # type: ignore[operator]
    assert info.value.setting == setting


def test_O7_the_service_uses_the_configured_gate(tmp_path: object) -> None:
    from sessionward.app import create_app
    from sessionward.flask import state

    app = create_app(tmp_path / "instance", config={"SESSIONWARD_HASH_CONCURRENCY": "3",  # type: ignore[operator]
                                                    "SESSIONWARD_HASH_QUEUE": "7", "SESSIONWARD_HASH_WAIT": "2.5"})
    with app.app_context():
        gate = state().hasher.gate
    assert (gate.max_concurrent, gate.max_waiting, gate.max_wait) == (3, 7, 2.5)
