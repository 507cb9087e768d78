"""A1 (argon2id, OWASP parameters or stronger, rehash) and A2 (length, no truncation, common passwords)."""

from __future__ import annotations

import logging

import argon2
import pytest

from sessionward.exceptions import ConfigError, PasswordPolicyError
from sessionward.passwords import (
    OWASP_MIN_MEMORY_COST,
    OWASP_MIN_TIME_COST,
    Argon2idHasher,
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
