"""The audit's offline checks: the weak-secret list and cracking, session id randomness estimates, and the
client-side session detector."""

from __future__ import annotations

import secrets

import jwt
import pytest

from sessionward.audit import forge
from sessionward.audit.probes.cookies import client_side_payload, estimated_bits


@pytest.mark.filterwarnings("ignore:The HMAC key")
def test_weak_secret_cracked_offline_and_strong_one_not() -> None:
    names = forge.weak_secrets()
    assert len(names) >= 200 and len(set(names)) == len(names)
    assert {"secret", "changeme", "your-256-bit-secret", "super-secret"} <= set(names)
    weak = jwt.encode({"sub": "apiuser"}, "super-secret", algorithm="HS256")
    assert forge.crack_hmac(weak, names) == "super-secret"
    strong = jwt.encode({"sub": "apiuser"}, secrets.token_bytes(32), algorithm="HS256")
    assert forge.crack_hmac(strong, names) is None
    assert forge.crack_hmac(forge.alg_none(weak), names) is None  # not an HMAC token


def test_random_ids_estimated_above_128_bits_and_weak_ones_below() -> None:
    assert estimated_bits([secrets.token_urlsafe(32) for _ in range(3)]) >= 128
    assert estimated_bits([f"sess-{n:08d}" for n in (1000, 1001, 1002)]) < 128  # a counter
    assert estimated_bits(["abc", "abc", "abd"]) == 0  # a repeat


def test_client_side_session_detected() -> None:
    from itsdangerous import URLSafeTimedSerializer  # Flask's signed-cookie session format

    value = URLSafeTimedSerializer("k").dumps({"user": "admin"})
    assert client_side_payload(value) == {"user": "admin"}
    assert client_side_payload(secrets.token_urlsafe(32)) is None
