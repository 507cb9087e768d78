"""One regression test per published JWT advisory that applies to sessionward's token service.

Each test forges the attack token with PyJWT/cryptography (or by hand) and sends it through
`TokenService.verify_access`, the one place that verifies access tokens. Where a later check is the
defence, the forged token is signed with our real key, so only that check can stop it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from typing import Any, Iterator

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from sessionward.clock import ManualClock
from sessionward.exceptions import TokenError
from sessionward.stores.sql import SQLStore
from sessionward.tokens import KeySet, TokenPolicy, TokenService
from sessionward.tokens import jws as jws_module
from sessionward.tokens.claims import validate_claims

ISSUER = "https://auth.example.test"
AUDIENCE = "example-api"


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def signing_input(header: dict[str, Any], payload: dict[str, Any]) -> str:
    enc = lambda obj: b64u(json.dumps(obj, separators=(",", ":")).encode())  # noqa: E731
    return f"{enc(header)}.{enc(payload)}"


def payload_of(token: str) -> dict[str, Any]:
    seg = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(seg + "=" * (-len(seg) % 4)))


@pytest.fixture
def store(tmp_path: Any) -> Iterator[SQLStore]:
    s = SQLStore.from_url(f"sqlite:///{tmp_path}/store.db")
    yield s
    s.close()


def make(store: SQLStore, clock: ManualClock, alg: str) -> tuple[TokenService, Any, str]:
    keys = KeySet.generate(alg, now=clock.now())
    svc = TokenService(
        store=store,
        keys=keys,
        refresh_key=secrets.token_bytes(32),
        policy=TokenPolicy(issuer=ISSUER, audience=AUDIENCE),
        clock=clock,
    )
    return svc, keys.signing_key(clock.now()), svc.issue("alice", fresh=True).access_token


def refused(svc: TokenService, token: str) -> str:
    with pytest.raises(TokenError) as exc:
        svc.verify_access(token)
    return exc.value.reason


def sign_with_our_key(key: Any, header: dict[str, Any], payload: dict[str, Any]) -> str:
    hdr = {k: v for k, v in header.items() if k != "alg"}
    return jwt.PyJWS().encode(json.dumps(payload).encode(), key.private, algorithm=key.alg, headers=hdr)


def test_installed_pyjwt_has_the_fixes() -> None:
    major, minor = (int(x) for x in jwt.__version__.split(".")[:2])
    assert (major, minor) >= (2, 12), "PyJWT < 2.12 accepts unknown crit extensions (CVE-2026-32597)"


# -- CVE-2015-9235 family (alg "none"), RFC 8725 3.1 -----------------------------------------------------


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
def test_alg_none(store: SQLStore, clock: ManualClock, alg: str) -> None:
    svc, key, good = make(store, clock, "EdDSA")
    header = {"alg": alg, "typ": "at+jwt", "kid": key.kid}
    body = signing_input(header, {**payload_of(good), "sub": "admin"})
    assert refused(svc, body + ".") == "malformed"
    assert refused(svc, body + "." + good.split(".")[2]) == "alg none"


# -- CVE-2022-29217 (PyJWT) and CVE-2017-11424: HMAC with the public key as secret ------------------------------


def _public_texts(key: Any) -> dict[str, bytes]:
    pub = key.private.public_key()
    return {
        "pem": pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
        "ssh": pub.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH),
        "jwk": json.dumps(key.public_jwk()).encode(),
    }


@pytest.mark.parametrize("alg", ["EdDSA", "ES256", "RS256"])
@pytest.mark.parametrize("form", ["pem", "ssh", "jwk"])
def test_hs256_signed_with_our_public_key(store: SQLStore, clock: ManualClock, alg: str, form: str) -> None:
    svc, key, good = make(store, clock, alg)
    secret = _public_texts(key)[form]
    body = signing_input({"alg": "HS256", "typ": "at+jwt", "kid": key.kid}, {**payload_of(good), "sub": "admin"})
    forged = body + "." + b64u(hmac.new(secret, body.encode(), hashlib.sha256).digest())
    assert refused(svc, forged) == "alg does not match the key"
    # and the JWKS publishes exactly the text an attacker would use: it must never be an HMAC key for us
    assert key.kid in {k["kid"] for k in svc.jwks()["keys"]}


# -- CVE-2018-0114 (embedded jwk) and RFC 8725 3.10 (jku / x5u / x5c) ----------------------------------------------


@pytest.mark.parametrize("param", ["jwk", "jku", "x5u", "x5c"])
def test_keys_from_the_token_header(store: SQLStore, clock: ManualClock, param: str) -> None:
    from cryptography.hazmat.primitives.asymmetric import ed25519

    svc, key, good = make(store, clock, "EdDSA")
    attacker = ed25519.Ed25519PrivateKey.generate()
    value: Any = {
        "jwk": jwt.algorithms.OKPAlgorithm.to_jwk(attacker.public_key(), as_dict=True),
        "jku": "https://evil.example/jwks.json",
        "x5u": "https://evil.example/cert.pem",
        "x5c": ["MIIBszCCAVmgAwIBAgIU"],
    }[param]
    forged = jwt.PyJWS().encode(
        json.dumps({**payload_of(good), "sub": "admin"}).encode(),
        attacker,
        algorithm="EdDSA",
        headers={"typ": "at+jwt", "kid": key.kid, param: value},
    )
    assert refused(svc, forged) == "key-bearing header refused"


# -- CVE-2022-21449 ("psychic signatures"): ECDSA r = s = 0 --------------------------------------------------------------


@pytest.mark.parametrize(
    "signature",
    [bytes(64), bytes.fromhex("3006020100020100")],
    ids=["raw-r=s=0", "der-r=s=0"],
)
def test_ecdsa_zero_signature(store: SQLStore, clock: ManualClock, signature: bytes) -> None:
    svc, key, good = make(store, clock, "ES256")
    body = good.rsplit(".", 1)[0]
    assert refused(svc, body + "." + b64u(signature)) == "bad signature"
    # with a payload of the attacker's choice too
    body2 = signing_input({"alg": "ES256", "typ": "at+jwt", "kid": key.kid}, {**payload_of(good), "sub": "admin"})
    assert refused(svc, body2 + "." + b64u(signature)) == "bad signature"


# -- CVE-2024-53861 (PyJWT 2.10.0): iss checked as a substring / container -------------------------------------------------


@pytest.mark.parametrize("iss", ["auth.example", "https://auth", ISSUER[:-1], [ISSUER], [ISSUER, "https://evil"], ["h"]])
def test_issuer_partial_match(store: SQLStore, clock: ManualClock, iss: Any) -> None:
    svc, key, good = make(store, clock, "EdDSA")
    payload = {**payload_of(good), "iss": iss}
    assert refused(svc, sign_with_our_key(key, {"typ": "at+jwt", "kid": key.kid}, payload)) == "wrong issuer"
    # our own check, independent of PyJWT's
    with pytest.raises(TokenError):
        validate_claims(payload, kid=key.kid, policy=svc.policy, now=clock.now())


# -- CVE-2026-32597 (PyJWT < 2.12): unknown crit extensions accepted; RFC 7515 4.1.11 --------------------------------------


@pytest.mark.parametrize("crit", [["x"], ["exp"], ["b64"]])
def test_unknown_crit_extension(store: SQLStore, clock: ManualClock, crit: list[str]) -> None:
    svc, key, good = make(store, clock, "EdDSA")
    forged = sign_with_our_key(key, {"typ": "at+jwt", "kid": key.kid, "crit": crit, "x": True}, payload_of(good))
    assert refused(svc, forged) == "crit header refused"


# -- CVE-2025-61920 (Authlib): unbounded token size -> CPU/memory DoS -------------------------------------------------------


def test_oversized_token_refused_before_any_parsing(store: SQLStore, clock: ManualClock, monkeypatch: pytest.MonkeyPatch) -> None:
    svc, key, good = make(store, clock, "EdDSA")
    h, p, s = good.split(".")

    def must_not_parse(_segment: str) -> bytes:
        raise AssertionError("an oversized token reached base64/JSON decoding")

    monkeypatch.setattr(jws_module, "_decode_segment", must_not_parse)
    one_mb_header = b64u(json.dumps({"alg": "EdDSA", "typ": "at+jwt", "kid": key.kid, "pad": "x" * 10**6}).encode())
    assert refused(svc, f"{one_mb_header}.{p}.{s}") == "too large"
    assert refused(svc, "." * (1024 * 1024)) == "too large"
