"""DPoP (RFC 9449), the framework-free core: one test per check of section 4.3, the nonce rules of sections
8/9, the token binding (`cnf.jkt`, no downgrade), the exact HTTP answers, and hypothesis fuzzing (every
malformed input is a `DPoPError`, never another exception). The client is tests/dpop_client.py."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import itertools
import json
import re
import secrets
from typing import Any

import pytest
from dpop_client import DPoPClient, new_private_key, private_jwk
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sessionward.dpop import (
    DPoPBindingError,
    DPoPError,
    DPoPPolicy,
    DPoPVerifier,
    InvalidDPoPAuthorization,
    InvalidDPoPProof,
    MissingDPoPProof,
    UseDPoPNonce,
    access_token_hash,
    check_refresh_binding,
    check_token_binding,
    normalize_htu,
    parse_authorization,
    token_jkt,
)
from sessionward.exceptions import ConfigError
from sessionward.popkeys import jwk_thumbprint
from sessionward.web.dpop import challenge_kind, token_endpoint_proof, www_authenticate

NOW = 1_800_000_000.0
URL = "https://api.example.com/api/me"
TOKEN = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl"  # any token text: only its hash matters here
NONCE_KEY = secrets.token_bytes(32)


@pytest.fixture
def verifier() -> DPoPVerifier:
    return DPoPVerifier(DPoPPolicy())


@pytest.fixture
def client() -> DPoPClient:
    return DPoPClient("ES256")


def refused(verifier: DPoPVerifier, proof: str | list[str], *, method: str = "GET", url: str = URL,
            access_token: str | None = None, error: type[DPoPError] = InvalidDPoPProof) -> DPoPError:
    proofs = proof if isinstance(proof, list) else [proof]
    with pytest.raises(error) as exc:
        verifier.verify(method=method, url=url, proofs=proofs, now=NOW, access_token=access_token)
    return exc.value


def accepted(verifier: DPoPVerifier, proof: str, **kw: Any) -> Any:
    kw.setdefault("method", "GET")
    kw.setdefault("url", URL)
    return verifier.verify(proofs=[proof], now=NOW, **kw)


# -- the valid case, per algorithm -------------------------------------------------------------------------

@pytest.mark.parametrize("alg", ["ES256", "Ed25519", "EdDSA"])
def test_T15_valid_proof_accepted_per_algorithm(verifier: DPoPVerifier, alg: str) -> None:
    c = DPoPClient(alg)
    proof = accepted(verifier, c.proof("GET", URL, now=NOW))
    assert proof.jkt == c.jkt and proof.alg == alg and proof.htm == "GET"
    assert proof.replay_until == NOW + verifier.policy.max_age
    assert proof.confirmation == {"cnf": {"jkt": c.jkt}}


def test_T15_rsa_only_when_the_policy_names_it(client: DPoPClient) -> None:
    c = DPoPClient("PS256")
    assert refused(DPoPVerifier(DPoPPolicy()), c.proof("GET", URL, now=NOW)).reason == "alg not allowed"
    assert accepted(DPoPVerifier(DPoPPolicy(algorithms=("PS256",))), c.proof("GET", URL, now=NOW)).jkt == c.jkt


def test_T15_rfc7638_thumbprint_test_vector() -> None:
    """RFC 7638 3.1: the example RSA key's thumbprint."""
    jwk = {
        "kty": "RSA", "e": "AQAB", "alg": "RS256", "kid": "2011-04-29",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV"
             "4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0z"
             "gdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFC"
             "ur-kEgU8awapJzKnqDKgw",
    }
    assert jwk_thumbprint(jwk) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


# -- 1. exactly one DPoP header, bounded ---------------------------------------------------------------

def test_T15_exactly_one_dpop_header(verifier: DPoPVerifier, client: DPoPClient) -> None:
    proof = client.proof("GET", URL, now=NOW)
    assert refused(verifier, []).reason == "missing DPoP header"
    assert refused(verifier, [proof, proof]).reason == "more than one DPoP header"
    assert refused(verifier, f"{proof}, {proof}").reason == "not a compact JWS"


def test_T15_oversized_proof_refused_before_parsing(verifier: DPoPVerifier, client: DPoPClient) -> None:
    proof = client.proof("GET", URL, now=NOW, padding="x" * 5000)
    assert refused(verifier, proof).reason == "too long"
    assert accepted(DPoPVerifier(DPoPPolicy(max_proof_bytes=16384)), proof).jkt == client.jkt


# -- 2. one well-formed compact JWS ----------------------------------------------------------------------

@pytest.mark.parametrize("mangle", [
    lambda p: p.rsplit(".", 1)[0],  # two segments
    lambda p: p + ".x",  # four
    lambda p: p.replace(".", "..", 1),  # an empty segment
    lambda p: p[:10] + "=" + p[10:],  # padding
    lambda p: " " + p,  # whitespace
    lambda p: p[:-1] + ("B" if p[-1] != "B" else "C"),  # non-canonical last character or another signature
])
def test_T15_malformed_compact_jws_refused(verifier: DPoPVerifier, client: DPoPClient, mangle: Any) -> None:
    refused(verifier, mangle(client.proof("GET", URL, now=NOW)))


def test_T15_duplicate_header_member_refused(verifier: DPoPVerifier, client: DPoPClient) -> None:
    jwk = json.dumps(client.jwk)
    head = f'{{"typ":"dpop+jwt","alg":"ES256","jwk":{jwk},"alg":"ES256"}}'.encode()
    assert refused(verifier, client.forge(head, client.claims("GET", URL, now=NOW))).reason == "malformed header"


# -- 3. header: typ, alg, jwk ----------------------------------------------------------------------------

@pytest.mark.parametrize("typ", [None, "JWT", "at+jwt", "DPOP+JWT", "application/dpop+jwt ", "dbsc+jwt"])
def test_T15_typ_must_be_dpop_jwt(verifier: DPoPVerifier, client: DPoPClient, typ: str | None) -> None:
    header = {**client.header(), "typ": typ}
    if typ is None:
        del header["typ"]
    assert refused(verifier, client.forge(header, client.claims("GET", URL, now=NOW))).reason == "typ is not dpop+jwt"


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
def test_T15_alg_none_refused_in_any_spelling(verifier: DPoPVerifier, client: DPoPClient, alg: str) -> None:
    signed = client.proof("GET", URL, now=NOW)
    head = base64.urlsafe_b64encode(json.dumps({**client.header(), "alg": alg}).encode()).rstrip(b"=").decode()
    _, body, _ = signed.split(".")
    assert refused(verifier, f"{head}.{body}.AA").reason == "alg not allowed"
    assert refused(verifier, f"{head}.{body}.").reason == "not a compact JWS"


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
def test_T15_hmac_alg_refused(verifier: DPoPVerifier, client: DPoPClient, alg: str) -> None:
    """A symmetric proof: HMAC over the proof with a key the attacker chose and shows in the header."""
    secret = secrets.token_bytes(32)
    oct_jwk = {"kty": "oct", "k": base64.urlsafe_b64encode(secret).rstrip(b"=").decode()}
    header = {"typ": "dpop+jwt", "alg": alg, "jwk": oct_jwk}
    proof = client.forge(header, client.claims("GET", URL, now=NOW), alg=alg, key=secret)
    assert refused(verifier, proof).reason == "alg not allowed"
    # even if a deployment could list it, the key module knows no symmetric algorithm
    with pytest.raises(ConfigError):
        DPoPPolicy(algorithms=(alg,))


def test_T15_alg_must_match_the_key_type(verifier: DPoPVerifier) -> None:
    ed = DPoPClient("Ed25519")
    header = {**ed.header(), "alg": "ES256"}  # an OKP key under ES256
    assert refused(verifier, ed.forge(header, ed.claims("GET", URL, now=NOW), alg="Ed25519")).reason == (
        "jwk kty does not match alg"
    )


def test_T15_jwk_required(verifier: DPoPVerifier, client: DPoPClient) -> None:
    header = {"typ": "dpop+jwt", "alg": "ES256"}
    assert refused(verifier, client.forge(header, client.claims("GET", URL, now=NOW))).reason == "jwk missing"


@pytest.mark.parametrize("alg", ["ES256", "Ed25519"])
def test_T15_private_jwk_refused(verifier: DPoPVerifier, alg: str) -> None:
    c = DPoPClient(alg)
    header = {**c.header(), "jwk": private_jwk(c.private_key, alg)}
    proof = c.forge(header, c.claims("GET", URL, now=NOW))
    assert refused(verifier, proof).reason == "jwk contains private key material"


def test_T15_jwk_point_not_on_curve_refused(verifier: DPoPVerifier, client: DPoPClient) -> None:
    bad = {**client.jwk, "y": client.jwk["x"]}
    header = {**client.header(), "jwk": bad}
    assert refused(verifier, client.forge(header, client.claims("GET", URL, now=NOW))).reason == (
        "jwk is not a valid public key"
    )


@pytest.mark.parametrize("member", ["crit", "jku", "x5u", "x5c", "x5t", "b64", "zip"])
def test_T15_extra_header_parameters_refused(verifier: DPoPVerifier, client: DPoPClient, member: str) -> None:
    header = {**client.header(), member: ["x"] if member == "crit" else "x"}
    refused(verifier, client.forge(header, client.claims("GET", URL, now=NOW)))


# -- 4. signature by the jwk -----------------------------------------------------------------------------

def test_T15_signature_by_another_key_refused(verifier: DPoPVerifier, client: DPoPClient) -> None:
    """The header names the victim's public key; the attacker signs with its own."""
    attacker = new_private_key("ES256")
    proof = client.forge(client.header(), client.claims("GET", URL, now=NOW), key=attacker)
    assert refused(verifier, proof).reason == "bad signature"


def test_T15_tampered_payload_refused(verifier: DPoPVerifier, client: DPoPClient) -> None:
    head, _, sig = client.proof("GET", URL, now=NOW).split(".")
    _, body, _ = client.proof("POST", URL, now=NOW).split(".")
    assert refused(verifier, f"{head}.{body}.{sig}").reason == "bad signature"


# -- 5./6. claims: jti, htm, htu --------------------------------------------------------------------------

@pytest.mark.parametrize("jti", [..., "", 7, None, "x" * 129, "with space", "caf\u00e9"])
def test_T15_jti_required_and_bounded(verifier: DPoPVerifier, client: DPoPClient, jti: Any) -> None:
    assert refused(verifier, client.proof("GET", URL, now=NOW, jti=jti)).reason == "jti missing or malformed"


@pytest.mark.parametrize("claim", ["htm", "htu", "iat"])
def test_T15_required_claims(verifier: DPoPVerifier, client: DPoPClient, claim: str) -> None:
    assert refused(verifier, client.proof("GET", URL, now=NOW, **{claim: ...})).reason == "htm, htu or iat missing"


@pytest.mark.parametrize("method", ["POST", "get", "HEAD"])
def test_T15_htm_must_equal_the_method(verifier: DPoPVerifier, client: DPoPClient, method: str) -> None:
    assert refused(verifier, client.proof(method, URL, now=NOW)).reason == "htm does not match the method"


@pytest.mark.parametrize("htu", [
    "https://api.example.com/api/you",  # another path
    "https://evil.example.com/api/me",  # another host
    "http://api.example.com/api/me",  # another scheme
    "https://api.example.com:8443/api/me",  # another port
    "https://api.example.com/api/me/",  # a trailing slash is another resource
    "https://api.example.com/api/%6De2",  # decodes to /api/me2
])
def test_T15_htu_must_match_the_url(verifier: DPoPVerifier, client: DPoPClient, htu: str) -> None:
    assert refused(verifier, client.proof("GET", URL, now=NOW, htu=htu)).reason == "htu does not match the URL"


@pytest.mark.parametrize("htu", [
    "HTTPS://API.Example.COM/api/me",  # scheme and host case
    "https://api.example.com:443/api/me",  # default port
    "https://api.example.com/api/me?x=1#frag",  # query and fragment ignored
    "https://api.example.com/api/%6De",  # percent-encoded unreserved character
    "https://api.example.com/api/./x/../me",  # dot segments
])
def test_T15_htu_compared_after_rfc3986_normalisation(verifier: DPoPVerifier, client: DPoPClient, htu: str) -> None:
    assert accepted(verifier, client.proof("GET", URL, now=NOW, htu=htu)).jkt == client.jkt


@pytest.mark.parametrize("htu", ["/api/me", "ftp://api.example.com/api/me", "https://u:p@api.example.com/api/me",
                                 "https://api.example.com/a%zz", "https://api.example.com:99999/", "https:///x"])
def test_T15_malformed_htu_refused(verifier: DPoPVerifier, client: DPoPClient, htu: Any) -> None:
    assert refused(verifier, client.proof("GET", URL, now=NOW, htu=htu)).reason == "htu malformed"


def test_htu_normalisation_details() -> None:
    assert normalize_htu("HTTP://[::1]:80/a%2fb%7E") == "http://[::1]/a%2Fb~"
    assert normalize_htu("https://x.example") == "https://x.example/"
    with pytest.raises(ValueError):
        normalize_htu("https://x.example/" + "a" * 5000)


# -- 8. iat window ---------------------------------------------------------------------------------------

def test_T15_iat_window(verifier: DPoPVerifier, client: DPoPClient) -> None:
    policy = verifier.policy
    assert accepted(verifier, client.proof("GET", URL, now=NOW - policy.max_age))
    assert accepted(verifier, client.proof("GET", URL, now=NOW + policy.future_skew))
    assert refused(verifier, client.proof("GET", URL, now=NOW - policy.max_age - 1)).reason == "iat too old"
    assert refused(verifier, client.proof("GET", URL, now=NOW + policy.future_skew + 1)).reason == "iat in the future"


@pytest.mark.parametrize("iat", ["1800000000", True, None, float("nan")])
def test_T15_iat_must_be_a_number(verifier: DPoPVerifier, client: DPoPClient, iat: Any) -> None:
    if iat == iat:  # noqa: PLR0124 - NaN is the one value that differs from itself
        proof = client.proof("GET", URL, now=NOW, iat=iat)
    else:
        body = json.dumps({**client.claims("GET", URL, now=NOW), "iat": "NaN"}).replace('"NaN"', "NaN")
        proof = client.forge(client.header(), body.encode())
    refused(verifier, proof)


# -- replay: the key the store checks --------------------------------------------------------------------

def test_T15_replay_key_is_per_key_and_jti(verifier: DPoPVerifier, client: DPoPClient) -> None:
    one = accepted(verifier, client.proof("GET", URL, now=NOW, jti="abc"))
    again = accepted(verifier, client.proof("GET", URL, now=NOW, jti="abc"))
    other = accepted(verifier, DPoPClient().proof("GET", URL, now=NOW, jti="abc"))
    assert one.replay_key == again.replay_key != other.replay_key
    assert one.replay_key.startswith("dpop-jti:") and len(one.replay_key) == 73
    err = verifier.replayed(again)
    assert err.reason == "jti replayed" and err.code == "invalid_dpop_proof"
    # remembered exactly as long as the proof could pass the iat check
    late = accepted(verifier, client.proof("GET", URL, now=NOW - 30, jti="old"))
    assert late.replay_until == NOW - 30 + verifier.policy.max_age


# -- 9. ath ------------------------------------------------------------------------------------------------

def test_T15_ath_must_match_the_access_token(verifier: DPoPVerifier, client: DPoPClient) -> None:
    assert accepted(verifier, client.proof("GET", URL, now=NOW, access_token=TOKEN), access_token=TOKEN)
    assert refused(verifier, client.proof("GET", URL, now=NOW), access_token=TOKEN).reason == (
        "ath does not match the access token"
    )
    wrong = client.proof("GET", URL, now=NOW, access_token=TOKEN + "x")
    assert refused(verifier, wrong, access_token=TOKEN).reason == "ath does not match the access token"
    assert access_token_hash("abc") == base64.urlsafe_b64encode(hashlib.sha256(b"abc").digest()).rstrip(b"=").decode()


# -- nonces (sections 8, 9) --------------------------------------------------------------------------------

@pytest.fixture
def nonce_verifier() -> DPoPVerifier:
    return DPoPVerifier(DPoPPolicy(nonce=True, nonce_lifetime=300), nonce_keys=[NONCE_KEY])


def test_T15_nonce_missing_gives_use_dpop_nonce(nonce_verifier: DPoPVerifier, client: DPoPClient) -> None:
    err = refused(nonce_verifier, client.proof("GET", URL, now=NOW), error=UseDPoPNonce)
    assert err.reason == "nonce missing"
    assert err.nonce and err.resource_headers()["DPoP-Nonce"] == err.nonce
    assert err.resource_headers()["WWW-Authenticate"] == (
        'DPoP error="use_dpop_nonce", error_description="Server requires nonce in DPoP proof", '
        'algs="ES256 Ed25519 EdDSA"'
    )
    assert err.token_endpoint_body()["error"] == "use_dpop_nonce" and err.token_endpoint_status == 400
    assert client.observe(err.resource_headers())  # the client retries once with the server's nonce
    assert accepted(nonce_verifier, client.proof("GET", URL, now=NOW)).nonce_issued == int(NOW)


def test_T15_nonce_expired_or_foreign_refused(nonce_verifier: DPoPVerifier, client: DPoPClient) -> None:
    old = nonce_verifier.new_nonce(now=NOW - 301)
    assert refused(nonce_verifier, client.proof("GET", URL, now=NOW, nonce=old), error=UseDPoPNonce).reason == (
        "nonce expired"
    )
    foreign = DPoPVerifier(DPoPPolicy(nonce=True), nonce_keys=[secrets.token_bytes(32)]).new_nonce(now=NOW)
    assert refused(nonce_verifier, client.proof("GET", URL, now=NOW, nonce=foreign), error=UseDPoPNonce).reason == (
        "nonce bad mac"
    )
    future = nonce_verifier.new_nonce(now=NOW + 60)
    assert refused(nonce_verifier, client.proof("GET", URL, now=NOW, nonce=future), error=UseDPoPNonce).reason == (
        "nonce future"
    )
    for junk in ("", "x" * 300, 5):
        refused(nonce_verifier, client.proof("GET", URL, now=NOW, nonce=junk), error=UseDPoPNonce)


def test_T15_nonce_key_is_its_own(client: DPoPClient) -> None:
    """The nonce MAC names its purpose: a value made with the same key for another purpose is not a nonce."""
    from sessionward.timedmac import TimedMAC

    other = TimedMAC([NONCE_KEY], purpose="sessionward dbsc-challenge v1", setting="X").issue("", now=NOW)
    v = DPoPVerifier(DPoPPolicy(nonce=True), nonce_keys=[NONCE_KEY])
    assert refused(v, client.proof("GET", URL, now=NOW, nonce=other), error=UseDPoPNonce).reason == "nonce bad mac"


def test_T15_nonce_rollover(nonce_verifier: DPoPVerifier, client: DPoPClient) -> None:
    client.nonce = nonce_verifier.new_nonce(now=NOW - 100)
    fresh = accepted(nonce_verifier, client.proof("GET", URL, now=NOW))
    assert nonce_verifier.nonce_to_send(fresh, now=NOW) is None
    assert nonce_verifier.nonce_to_send(fresh, now=NOW + 60) is not None  # past half its lifetime
    assert nonce_verifier.nonce_to_send(None, now=NOW) is not None
    assert DPoPVerifier(DPoPPolicy()).nonce_to_send(fresh, now=NOW) is None


def test_nonce_configuration_errors() -> None:
    with pytest.raises(ConfigError, match="DPOP_NONCE_KEYS"):
        DPoPVerifier(DPoPPolicy(nonce=True))
    with pytest.raises(ConfigError, match="DPOP_NONCE_KEYS"):
        DPoPVerifier(DPoPPolicy(nonce=True), nonce_keys=[b"short"])


# -- the token binding (section 7) and no downgrade -------------------------------------------------------

def bind(verifier: DPoPVerifier, client: DPoPClient | None, *, scheme: str = "DPoP", jkt: str | None,
         proof: str | None = None) -> Any:
    proofs = [proof] if proof else ([client.proof("GET", URL, now=NOW, access_token=TOKEN)] if client else [])
    return check_token_binding(verifier, scheme=scheme, access_token=TOKEN, jkt=jkt, method="GET", url=URL,
                               proofs=proofs, now=NOW)


def test_T15_bound_token_with_its_key_accepted(verifier: DPoPVerifier, client: DPoPClient) -> None:
    assert bind(verifier, client, jkt=client.jkt).jkt == client.jkt


def test_T15_bound_token_with_another_key_refused(verifier: DPoPVerifier, client: DPoPClient) -> None:
    thief = DPoPClient()
    with pytest.raises(DPoPBindingError) as exc:
        bind(verifier, thief, jkt=client.jkt)
    assert exc.value.reason == "proof key does not match cnf.jkt"
    assert exc.value.resource_headers()["WWW-Authenticate"] == (
        'DPoP error="invalid_token", error_description="Invalid DPoP key binding", algs="ES256 Ed25519 EdDSA"'
    )
    assert exc.value.status == 401


def test_T15_bound_token_as_bearer_or_without_proof_refused(verifier: DPoPVerifier, client: DPoPClient) -> None:
    with pytest.raises(DPoPBindingError) as exc:
        bind(verifier, client, scheme="Bearer", jkt=client.jkt)
    assert exc.value.reason == "DPoP-bound token presented as Bearer"
    with pytest.raises(DPoPBindingError) as exc:
        bind(verifier, None, jkt=client.jkt)
    assert exc.value.reason == "DPoP-bound token without a proof"


def test_T15_bound_token_proof_must_carry_its_ath(verifier: DPoPVerifier, client: DPoPClient) -> None:
    with pytest.raises(InvalidDPoPProof):
        bind(verifier, None, jkt=client.jkt, proof=client.proof("GET", URL, now=NOW))


def test_T15_unbound_token_rules() -> None:
    allowed, required, off = (DPoPVerifier(DPoPPolicy(mode=m)) for m in ("allowed", "required", "off"))
    c = DPoPClient()
    assert bind(allowed, None, scheme="Bearer", jkt=None) is None
    with pytest.raises(DPoPBindingError):
        bind(allowed, c, scheme="DPoP", jkt=None)  # not bound: the DPoP scheme is a lie
    with pytest.raises(DPoPBindingError):
        bind(required, None, scheme="Bearer", jkt=None)
    with pytest.raises(DPoPBindingError):
        bind(off, c, jkt=c.jkt)


def test_T15_refresh_binding_no_downgrade(verifier: DPoPVerifier, client: DPoPClient) -> None:
    proof = accepted(verifier, client.proof("POST", URL, now=NOW), method="POST")
    check_refresh_binding(verifier, bound_jkt=client.jkt, proof=proof)
    check_refresh_binding(verifier, bound_jkt=None, proof=proof)
    check_refresh_binding(verifier, bound_jkt=None, proof=None)
    with pytest.raises(DPoPBindingError) as exc:
        check_refresh_binding(verifier, bound_jkt=client.jkt, proof=None)
    body = exc.value.token_endpoint_body()
    assert body == {"error": "invalid_grant", "error_description": "Invalid DPoP key binding"}
    thief = accepted(verifier, DPoPClient().proof("POST", URL, now=NOW), method="POST")
    with pytest.raises(DPoPBindingError):
        check_refresh_binding(verifier, bound_jkt=client.jkt, proof=thief)
    with pytest.raises(MissingDPoPProof) as missing:  # RFC 9449 5: no proof where one is required
        check_refresh_binding(DPoPVerifier(DPoPPolicy(mode="required")), bound_jkt=None, proof=None)
    assert missing.value.token_endpoint_body() == {"error": "invalid_dpop_proof",
                                                   "error_description": "DPoP proof required"}


def test_T15_token_request_without_proof_where_required_is_invalid_dpop_proof() -> None:
    """RFC 9449 5 / RFC 6749 5.2: 400 `invalid_dpop_proof` (JSON), not `invalid_grant` (the grant is fine)."""
    required = DPoPVerifier(DPoPPolicy(mode="required", algorithms=("ES256",)))
    with pytest.raises(MissingDPoPProof) as exc:
        token_endpoint_proof(required, method="POST", url=URL, proofs=[], now=NOW)
    err = exc.value
    assert isinstance(err, InvalidDPoPProof) and err.token_endpoint_status == 400
    assert err.token_endpoint_body() == {"error": "invalid_dpop_proof", "error_description": "DPoP proof required"}
    assert err.resource_headers()["WWW-Authenticate"] == (
        'DPoP error="invalid_dpop_proof", error_description="DPoP proof required", algs="ES256"'
    )
    for mode in ("allowed", "off"):
        assert token_endpoint_proof(DPoPVerifier(DPoPPolicy(mode=mode)), method="POST", url=URL, proofs=[],
                                    now=NOW) is None


def test_token_jkt() -> None:
    jkt = DPoPClient().jkt
    assert token_jkt({"cnf": {"jkt": jkt}}) == jkt
    assert token_jkt({}) is None and token_jkt(None) is None
    for bad in ({"cnf": "x"}, {"cnf": {"jkt": 5}}, {"cnf": {"jkt": "short"}}, {"cnf": {}}):
        with pytest.raises(DPoPBindingError) as exc:
            token_jkt(bad, algs=("ES256",))
        assert exc.value.www_authenticate.endswith(', algs="ES256"')  # never an empty algs=""


# -- answers -----------------------------------------------------------------------------------------------

def test_invalid_proof_answers(verifier: DPoPVerifier, client: DPoPClient) -> None:
    err = refused(verifier, client.proof("POST", URL, now=NOW))
    assert err.status == 401 and err.code == "invalid_dpop_proof"
    assert err.resource_headers() == {
        "WWW-Authenticate": 'DPoP error="invalid_dpop_proof", error_description="Invalid DPoP proof", '
                            'algs="ES256 Ed25519 EdDSA"',
        "Cache-Control": "no-store",
    }
    assert err.token_endpoint_status == 400
    assert err.token_endpoint_body() == {"error": "invalid_dpop_proof", "error_description": "Invalid DPoP proof"}
    assert verifier.challenge() == 'DPoP algs="ES256 Ed25519 EdDSA"'


def test_parse_authorization_is_scheme_spaces_token68() -> None:
    # parse_authorization checks `scheme 1*SP token68` in parts (not one regex): every short value over an
    # alphabet of edge characters gets the grammar's verdict and the same (scheme, token)
    grammar = re.compile(r"([A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]*) +([A-Za-z0-9._~+/-]+=*)")
    chars = ["a", "D", "0", " ", "=", ".", "~", "+", "/", "-", "!", ",", "\t", "\u00e9", "\u212a"]
    for length in range(6):
        for value in map("".join, itertools.product(chars, repeat=length)):
            match = grammar.fullmatch(value)
            try:
                parsed = parse_authorization([value], algs=("ES256",))
            except InvalidDPoPAuthorization:
                assert match is None, value
            else:
                assert match is not None and parsed is not None and parsed[1] == match[2], value
                assert parsed[0] == {"bearer": "Bearer", "dpop": "DPoP"}.get(match[1].lower(), match[1]), value


def test_parse_authorization() -> None:
    algs = ("ES256",)
    assert parse_authorization([], algs=algs) is None
    assert parse_authorization(["dpop abc.def-_~+/=="], algs=algs) == ("DPoP", "abc.def-_~+/==")
    assert parse_authorization(["BEARER x"], algs=algs) == ("Bearer", "x")
    assert parse_authorization(["Basic dXNlcg=="], algs=algs) == ("Basic", "dXNlcg==")
    for bad in (["DPoP"], ["DPoP a b"], ["DPoP a", "DPoP b"], ["DPoP " + "a" * 20000], ["DPoP \u00e9"]):
        with pytest.raises(InvalidDPoPAuthorization) as exc:
            parse_authorization(bad, algs=algs)
        # RFC 6750 3.1 (applied to DPoP by RFC 9449 7.1): a malformed request is 400 invalid_request; the
        # proof was not even looked at, so it is no invalid_dpop_proof
        assert exc.value.status == 400 and exc.value.resource_headers()["WWW-Authenticate"] == (
            'DPoP error="invalid_request", error_description="Malformed DPoP Authorization header", algs="ES256"'
        )


def test_challenge_for_token_refusals() -> None:
    """RFC 9449 7.1, 7.2 with RFC 6750 3.1: no credentials is a challenge without `error` (both schemes where
    both are accepted, `DPoP algs=` alone where DPoP is required); a refusal names the scheme the client must use."""
    allowed, required, off = (DPoPVerifier(DPoPPolicy(mode=m, algorithms=("ES256", "EdDSA")))
                              for m in ("allowed", "required", "off"))
    both = 'Bearer realm="sessionward", DPoP algs="ES256 EdDSA"'
    assert www_authenticate(allowed, challenge_kind(allowed, scheme=None)) == both
    assert www_authenticate(required, challenge_kind(required, scheme=None)) == 'DPoP algs="ES256 EdDSA"'
    assert www_authenticate(allowed, challenge_kind(allowed, scheme=None, require=True)) == 'DPoP algs="ES256 EdDSA"'
    assert www_authenticate(off, challenge_kind(off, scheme=None)) == 'Bearer realm="sessionward"'
    assert www_authenticate(off, challenge_kind(off, scheme=None, require=True)) == 'DPoP algs="ES256 EdDSA"'
    bad = {"error": "invalid_token"}
    assert www_authenticate(allowed, challenge_kind(allowed, scheme="DPoP"), **bad) == (
        'DPoP error="invalid_token", algs="ES256 EdDSA"'
    )
    assert www_authenticate(allowed, challenge_kind(allowed, scheme="Bearer"), **bad) == (
        'Bearer realm="sessionward", error="invalid_token"'  # Bearer clients unchanged under `allowed`
    )
    for verifier, require in ((required, False), (allowed, True)):
        assert www_authenticate(verifier, challenge_kind(verifier, scheme="Bearer", require=require), **bad) == (
            'DPoP error="invalid_token", algs="ES256 EdDSA"'
        )
    assert www_authenticate(allowed, "both", error="invalid_request") == (
        'Bearer realm="sessionward", error="invalid_request"'  # an error concerns the Bearer attempt
    )
    assert www_authenticate(allowed, None) == www_authenticate(None, "dpop") == 'Bearer realm="sessionward"'


def test_policy_validation() -> None:
    for kwargs, setting in [
        ({"mode": "on"}, "DPOP"), ({"algorithms": ()}, "DPOP_ALGS"), ({"algorithms": ("none",)}, "DPOP_ALGS"),
        ({"algorithms": "ES256"}, "DPOP_ALGS"), ({"algorithms": ("ES256", "ES256")}, "DPOP_ALGS"),
        ({"max_age": 0}, "DPOP_MAX_AGE"), ({"max_age": float("inf")}, "DPOP_MAX_AGE"),
        ({"future_skew": -1}, "DPOP_FUTURE_SKEW"), ({"nonce_lifetime": 1}, "DPOP_NONCE_LIFETIME"),
        ({"max_proof_bytes": 100}, "DPOP_MAX_PROOF_BYTES"), ({"max_jti_chars": 4}, "DPOP_MAX_JTI_CHARS"),
        ({"nonce": "yes"}, "DPOP_NONCE"),
    ]:
        with pytest.raises(ConfigError) as exc:
            DPoPPolicy(**kwargs)
        assert exc.value.setting == setting


# -- fuzzing: every malformed input is a DPoPError ----------------------------------------------------------

_FUZZ_CLIENT = DPoPClient()
_TEXT = st.text(st.characters(codec="utf-8") | st.characters(), max_size=60)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4),
    max_leaves=12,
)


def _only_dpop_errors(**kw: Any) -> None:
    verifier = DPoPVerifier(DPoPPolicy(nonce=True), nonce_keys=[NONCE_KEY])
    with contextlib.suppress(DPoPError):
        verifier.verify(now=NOW, **kw)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(proof=_TEXT | st.from_regex(r"[A-Za-z0-9_-]{0,40}\.[A-Za-z0-9_-]{0,40}\.[A-Za-z0-9_-]{0,40}", fullmatch=True),
       method=_TEXT, url=_TEXT, token=st.none() | _TEXT)
def test_O4_fuzz_raw_proof_text(proof: str, method: str, url: str, token: str | None) -> None:
    _only_dpop_errors(method=method, url=url, proofs=[proof], access_token=token)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(header=st.dictionaries(st.sampled_from(["typ", "alg", "jwk", "kid", "crit", "x"]), _JSON, max_size=5),
       jwk=st.none() | st.dictionaries(st.sampled_from(["kty", "crv", "x", "y", "d", "n", "e"]), _JSON, max_size=5),
       payload=st.dictionaries(st.sampled_from(["jti", "htm", "htu", "iat", "ath", "nonce"]), _JSON, max_size=6))
def test_O4_fuzz_signed_headers_and_claims(header: dict[str, Any], jwk: dict[str, Any] | None,
                                           payload: dict[str, Any]) -> None:
    """Well-signed proofs whose header, key and claims are arbitrary JSON: a DPoPError or a valid proof."""
    if jwk is not None:
        header["jwk"] = {**_FUZZ_CLIENT.jwk, **jwk}
    try:
        proof = _FUZZ_CLIENT.forge(header, json.dumps(payload, ensure_ascii=False).encode("utf-8", "surrogatepass"))
    except (TypeError, ValueError):  # text hypothesis made that json.dumps cannot write: not our concern
        return
    _only_dpop_errors(method="GET", url=URL, proofs=[proof], access_token=TOKEN)


@settings(max_examples=200, deadline=None)
@given(authorization=st.lists(_TEXT, max_size=3))
def test_O4_fuzz_authorization(authorization: list[str]) -> None:
    with contextlib.suppress(DPoPError):
        parse_authorization(authorization, algs=("ES256",))
