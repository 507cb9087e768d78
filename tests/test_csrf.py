"""CSRF core (C10): synchronizer token bound to the session, login token, Origin / Sec-Fetch-Site."""

from __future__ import annotations

import secrets

import pytest

from sessionward.csrf import CSRFProtector
from sessionward.exceptions import ConfigError, CSRFError

KEY = secrets.token_bytes(32)


@pytest.fixture
def csrf() -> CSRFProtector:
    return CSRFProtector(KEY, trusted_origins=["https://partner.example"])


def test_token_is_bound_to_the_session(csrf):
    token = csrf.session_token("hash-a")
    csrf.verify_session_token("hash-a", token)
    with pytest.raises(CSRFError):
        csrf.verify_session_token("hash-b", token)


@pytest.mark.parametrize("bad", [None, "", "x", "é" * 10, "A" * 500])
def test_missing_or_malformed_token_refused(csrf, bad):
    with pytest.raises(CSRFError):
        csrf.verify_session_token("hash-a", bad)


def test_token_depends_on_the_key(csrf):
    other = CSRFProtector(secrets.token_bytes(32))
    with pytest.raises(CSRFError):
        csrf.verify_session_token("hash-a", other.session_token("hash-a"))


def test_login_token_bound_to_nonce_and_distinct_from_session_token(csrf):
    token = csrf.login_token("nonce1")
    csrf.verify_login_token("nonce1", token)
    with pytest.raises(CSRFError):
        csrf.verify_login_token("nonce2", token)
    with pytest.raises(CSRFError):
        csrf.verify_login_token(None, token)
    with pytest.raises(CSRFError):  # purpose separation: a session token is no login token
        csrf.verify_login_token("nonce1", csrf.session_token("nonce1"))


def test_access_cookie_token_bound_to_jti_and_distinct_from_session_and_login_tokens(csrf):
    token = csrf.access_cookie_token("jti-1")
    csrf.verify_access_cookie_token("jti-1", token)
    with pytest.raises(CSRFError):
        csrf.verify_access_cookie_token("jti-2", token)
    with pytest.raises(CSRFError):  # purpose separation both ways
        csrf.verify_access_cookie_token("jti-1", csrf.session_token("jti-1"))
    with pytest.raises(CSRFError):
        csrf.verify_session_token("jti-1", token)
    with pytest.raises(CSRFError):
        csrf.verify_login_token("jti-1", token)


@pytest.mark.parametrize(
    "origin,site",
    [
        ("https://evil.example", None),
        ("null", None),
        (None, "cross-site"),
        ("https://app.example", "cross-site"),
        (None, "same-site"),
    ],
)
def test_cross_site_refused(csrf, origin, site):
    with pytest.raises(CSRFError):
        csrf.check_origin(own_origin="https://app.example", origin=origin, sec_fetch_site=site)


@pytest.mark.parametrize(
    "origin,site",
    [
        ("https://app.example", None),
        ("https://APP.example/", None),
        (None, "same-origin"),
        (None, "none"),
        (None, None),
        ("https://partner.example", None),
    ],
)
def test_same_origin_allowed(csrf, origin, site):
    csrf.check_origin(own_origin="https://app.example", origin=origin, sec_fetch_site=site)


@pytest.mark.parametrize("key", [b"short", b"\x00" * 32, "text-key-of-enough-length-000000000"])
def test_weak_key_refused(key):
    with pytest.raises(ConfigError):
        CSRFProtector(key)  # type: ignore[arg-type]
