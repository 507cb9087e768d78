"""One regression test per published JWT advisory that applies to sessionward's token service.

Each test forges the attack token with `sessionward.audit.forge` (the forging code `sessionward audit` uses
against running apps, so the audit and this suite cannot disagree) and sends it through
`TokenService.verify_access`, the one place that verifies access tokens. Where a later check is the
defence, the forged token is signed with our real key, so only that check can stop it.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from typing import Any

import jwt
import pytest

from sessionward.audit import forge
from sessionward.audit.forge import b64u, payload_of
from sessionward.clock import ManualClock
from sessionward.exceptions import TokenError
from sessionward.stores.sql import SQLStore
from sessionward.tokens import KeySet, TokenPolicy, TokenService
from sessionward.tokens import jws as jws_module
from sessionward.tokens.claims import validate_claims

ISSUER = "https://auth.example.test"
AUDIENCE = "example-api"


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


def sign_with_our_key(key: Any, good: str, header: dict[str, Any], **changes: Any) -> str:
    return forge.resign(good, key.private, alg=key.alg, header=header, **changes)


def test_installed_pyjwt_has_the_fixes() -> None:
    major, minor = (int(x) for x in jwt.__version__.split(".")[:2])
    assert (major, minor) >= (2, 12), "PyJWT < 2.12 accepts unknown crit extensions (CVE-2026-32597)"


# -- CVE-2015-9235 family (alg "none"), RFC 8725 3.1 -----------------------------------------------------


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
def test_alg_none(store: SQLStore, clock: ManualClock, alg: str) -> None:
    svc, key, good = make(store, clock, "EdDSA")
    assert forge.parts(good)[0] == {"alg": "EdDSA", "typ": "at+jwt", "kid": key.kid}
    assert refused(svc, forge.alg_none(good, alg, sub="admin")) == "malformed"
    assert refused(svc, forge.alg_none(good, alg, signature=forge.parts(good)[2], sub="admin")) == "alg none"


# -- CVE-2022-29217 (PyJWT) and CVE-2017-11424: HMAC with the public key as secret ------------------------------


def _public_texts(key: Any) -> dict[str, bytes]:
    return forge.public_key_texts(key.private.public_key(), key.public_jwk())


@pytest.mark.parametrize("alg", ["EdDSA", "ES256", "RS256"])
@pytest.mark.parametrize("form", ["pem", "ssh", "jwk"])
def test_hs256_signed_with_our_public_key(store: SQLStore, clock: ManualClock, alg: str, form: str) -> None:
    svc, key, good = make(store, clock, alg)
    secret = _public_texts(key)[form]
    forged = forge.hmac_signed(good, secret, header={"typ": "at+jwt", "kid": key.kid}, sub="admin")
    assert forge.parts(forged)[0]["alg"] == "HS256"
    assert refused(svc, forged) == "alg does not match the key"
    # and the JWKS publishes exactly the text an attacker would use: it must never be an HMAC key for us
    assert key.kid in {k["kid"] for k in svc.jwks()["keys"]}


# -- CVE-2018-0114 (embedded jwk) and RFC 8725 3.10 (jku / x5u / x5c) ----------------------------------------------


@pytest.mark.parametrize("param", ["jwk", "jku", "x5u", "x5c"])
def test_keys_from_the_token_header(store: SQLStore, clock: ManualClock, param: str) -> None:
    svc, key, good = make(store, clock, "EdDSA")
    forged = forge.embedded_key(good, param, alg="EdDSA", sub="admin")
    assert param in forge.parts(forged)[0] and forge.parts(forged)[0]["kid"] == key.kid
    assert refused(svc, forged) == "key-bearing header refused"


# -- CVE-2022-21449 ("psychic signatures"): ECDSA r = s = 0 ------------------------------------------------------------


@pytest.mark.parametrize(
    "signature",
    [bytes(64), bytes.fromhex("3006020100020100")],
    ids=["raw-r=s=0", "der-r=s=0"],
)
def test_ecdsa_zero_signature(store: SQLStore, clock: ManualClock, signature: bytes) -> None:
    svc, key, good = make(store, clock, "ES256")
    assert refused(svc, forge.with_signature(good, signature)) == "bad signature"
    # with a payload of the attacker's choice too
    assert refused(svc, forge.with_signature(good, signature, sub="admin")) == "bad signature"


# -- CVE-2024-53861 (PyJWT 2.10.0): iss checked as a substring / container ---------------------------------------------


@pytest.mark.parametrize("iss",
                         ["auth.example", "https://auth", ISSUER[:-1], [ISSUER], [ISSUER, "https://evil"], ["h"]])
def test_issuer_partial_match(store: SQLStore, clock: ManualClock, iss: Any) -> None:
    svc, key, good = make(store, clock, "EdDSA")
    payload = {**payload_of(good), "iss": iss}
    assert refused(svc, sign_with_our_key(key, good, {"typ": "at+jwt", "kid": key.kid}, iss=iss)) == "wrong issuer"
    # our own check, independent of PyJWT's
    with pytest.raises(TokenError):
        validate_claims(payload, kid=key.kid, policy=svc.policy, now=clock.now())


# -- CVE-2026-32597 (PyJWT < 2.12): unknown crit extensions accepted; RFC 7515 4.1.11 ----------------------------------


@pytest.mark.parametrize("crit", [["x"], ["exp"], ["b64"]])
def test_unknown_crit_extension(store: SQLStore, clock: ManualClock, crit: list[str]) -> None:
    svc, key, good = make(store, clock, "EdDSA")
    forged = sign_with_our_key(key, good, {"typ": "at+jwt", "kid": key.kid, "crit": crit, "x": True})
    assert refused(svc, forged) == "crit header refused"


# -- CVE-2025-61920 (Authlib): unbounded token size -> CPU/memory DoS --------------------------------------------------


def test_oversized_token_refused_before_any_parsing(store: SQLStore, clock: ManualClock,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    svc, key, good = make(store, clock, "EdDSA")
    h, p, s = good.split(".")

    def must_not_parse(_segment: str) -> bytes:
        raise AssertionError("an oversized token reached base64/JSON decoding")

    monkeypatch.setattr(jws_module, "_decode_segment", must_not_parse)
    one_mb_header = b64u(json.dumps({"alg": "EdDSA", "typ": "at+jwt", "kid": key.kid, "pad": "x" * 10**6}).encode())
    assert refused(svc, f"{one_mb_header}.{p}.{s}") == "too large"
    assert refused(svc, "." * (1024 * 1024)) == "too large"
