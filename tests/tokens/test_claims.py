"""TokenPolicy validation, claim building and the claim/header checks (T1, T3, T4, T5, T6)."""

from __future__ import annotations

from typing import Any

import pytest

from sessionward.exceptions import ConfigError, TokenError
from sessionward.tokens.claims import (
    ACCESS_TOKEN_TYPE,
    TokenPolicy,
    build_access_claims,
    check_header,
    validate_claims,
)

from .conftest import AUDIENCE, ISSUER

NOW = 1_800_000_000.0


@pytest.fixture
def pol() -> TokenPolicy:
    return TokenPolicy(issuer=ISSUER, audience=AUDIENCE)


def payload(pol: TokenPolicy, **changes: Any) -> dict[str, Any]:
    p = build_access_claims(pol, user_id="u1", family_id="fam", epoch=0, fresh=True, now=NOW, jti="j1")
    for k, v in changes.items():
        if v is ...:
            p.pop(k)
        else:
            p[k] = v
    return p


# -- policy ----------------------------------------------------------------------------------------


def test_defaults() -> None:
    p = TokenPolicy(issuer=ISSUER, audience=AUDIENCE)
    assert (p.access_ttl, p.refresh_idle, p.refresh_absolute) == (900, 14 * 86400, 30 * 86400)
    assert (p.leeway, p.max_token_bytes, p.reuse_grace) == (30, 8192, 0.0)


@pytest.mark.parametrize(
    ("changes", "setting"),
    [
        ({"issuer": ""}, "TOKEN_ISSUER"),
        ({"issuer": " https://a"}, "TOKEN_ISSUER"),
        ({"audience": ["a"]}, "TOKEN_AUDIENCE"),
        ({"access_ttl": 0}, "TOKEN_ACCESS_TTL"),
        ({"access_ttl": -5}, "TOKEN_ACCESS_TTL"),
        ({"access_ttl": True}, "TOKEN_ACCESS_TTL"),
        ({"access_ttl": float("inf")}, "TOKEN_ACCESS_TTL"),
        ({"access_ttl": 2 * 86400}, "TOKEN_ACCESS_TTL"),
        ({"refresh_idle": 40 * 86400}, "TOKEN_REFRESH_IDLE"),
        ({"leeway": 900}, "TOKEN_LEEWAY"),
        ({"leeway": -1}, "TOKEN_LEEWAY"),
        ({"max_token_bytes": 100}, "TOKEN_MAX_BYTES"),
        ({"max_token_bytes": 10**6}, "TOKEN_MAX_BYTES"),
        ({"reuse_grace": 3600}, "TOKEN_REUSE_GRACE"),
        ({"reuse_grace": -1}, "TOKEN_REUSE_GRACE"),
    ],
)
def test_bad_policy_names_the_setting(changes: dict[str, Any], setting: str) -> None:
    with pytest.raises(ConfigError) as exc:
        TokenPolicy(**{"issuer": ISSUER, "audience": AUDIENCE, **changes})
    assert exc.value.setting == setting


# -- building ----------------------------------------------------------------------------------------


def test_built_claims(pol: TokenPolicy) -> None:
    p = build_access_claims(pol, user_id="u1", family_id="fam", epoch=3, fresh=True, now=NOW + 0.7, jti="j1",
                            extra={"role": "admin"})
    assert p == {
        "iss": ISSUER, "aud": AUDIENCE, "sub": "u1", "iat": int(NOW), "nbf": int(NOW), "exp": int(NOW) + 900,
        "jti": "j1", "sid": "fam", "uep": 3, "fresh": True, "role": "admin",
    }


@pytest.mark.parametrize("name", ["sub", "exp", "iss", "aud", "uep", "fresh", "sid", "jti"])
def test_extra_claims_cannot_override_ours(pol: TokenPolicy, name: str) -> None:
    with pytest.raises(ValueError):
        build_access_claims(pol, user_id="u1", family_id="f", epoch=0, fresh=False, now=NOW, jti="j", extra={name: "x"})


# -- header allow-list ----------------------------------------------------------------------------------


def hdr(**changes: Any) -> dict[str, Any]:
    h: dict[str, Any] = {"alg": "EdDSA", "typ": ACCESS_TOKEN_TYPE, "kid": "k1"}
    for k, v in changes.items():
        if v is ...:
            h.pop(k)
        else:
            h[k] = v
    return h


def test_good_header() -> None:
    assert check_header(hdr()) == ("EdDSA", "k1")


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE", " none"])
def test_alg_none_any_spelling(alg: str) -> None:
    with pytest.raises(TokenError) as exc:
        check_header(hdr(alg=alg))
    assert exc.value.reason == "alg none"


@pytest.mark.parametrize("alg", ["HS512", "RS384", "PS256", "ES256K", "eddsa", 1, None])
def test_algorithms_we_never_use(alg: Any) -> None:
    with pytest.raises(TokenError):
        check_header(hdr(alg=alg))


@pytest.mark.parametrize(
    ("param", "value", "reason"),
    [
        ("crit", ["x"], "crit header refused"),
        ("crit", ["b64"], "crit header refused"),  # PyJWT understands b64; we understand no extension
        ("jwk", {"kty": "OKP", "crv": "Ed25519", "x": "AAAA"}, "key-bearing header refused"),
        ("jku", "https://evil.example/jwks.json", "key-bearing header refused"),
        ("x5u", "https://evil.example/cert.pem", "key-bearing header refused"),
        ("x5c", ["MIIB..."], "key-bearing header refused"),
        ("b64", False, "unknown header parameter"),
        ("zip", "DEF", "unknown header parameter"),
    ],
)
def test_header_parameters_outside_the_allow_list(param: str, value: Any, reason: str) -> None:
    with pytest.raises(TokenError) as exc:
        check_header(hdr(**{param: value}))
    assert exc.value.reason == reason


@pytest.mark.parametrize("typ", [..., "JWT", "jwt", "AT+JWT", "application/jwt", None])
def test_typ_must_be_at_jwt(typ: Any) -> None:
    with pytest.raises(TokenError) as exc:
        check_header(hdr(typ=typ))
    assert exc.value.reason == "typ is not at+jwt"


@pytest.mark.parametrize("kid", [..., None, 5, ["k1"], ""])
def test_kid_required_as_string(kid: Any) -> None:
    with pytest.raises(TokenError):
        check_header(hdr(kid=kid))


# -- claims after the signature check ----------------------------------------------------------------------


def test_valid_claims(pol: TokenPolicy) -> None:
    c = validate_claims(payload(pol, role="x"), kid="k1", policy=pol, now=NOW)
    assert (c.sub, c.sid, c.jti, c.fresh, c.epoch, c.kid) == ("u1", "fam", "j1", True, 0, "k1")
    assert dict(c.extra) == {"role": "x"}


@pytest.mark.parametrize(
    "iss",
    [ISSUER[:-1], ISSUER[8:], ISSUER + "x", ISSUER + "/", "x" + ISSUER, [ISSUER], [ISSUER, "x"], {"iss": ISSUER}, None],
)
def test_issuer_exact(pol: TokenPolicy, iss: Any) -> None:
    with pytest.raises(TokenError) as exc:
        validate_claims(payload(pol, iss=iss), kid="k1", policy=pol, now=NOW)
    assert exc.value.reason == "wrong issuer"


@pytest.mark.parametrize("aud", ["other-api", AUDIENCE[:-1], [AUDIENCE], [AUDIENCE, "other"], ..., None])
def test_audience_exact(pol: TokenPolicy, aud: Any) -> None:
    with pytest.raises(TokenError) as exc:
        validate_claims(payload(pol, aud=aud), kid="k1", policy=pol, now=NOW)
    assert exc.value.reason == "wrong audience"


@pytest.mark.parametrize("name", ["exp", "iat", "nbf", "sub", "jti", "sid", "uep", "fresh"])
def test_required_claims(pol: TokenPolicy, name: str) -> None:
    with pytest.raises(TokenError):
        validate_claims(payload(pol, **{name: ...}), kid="k1", policy=pol, now=NOW)


@pytest.mark.parametrize(
    ("name", "value"),
    [("exp", "1900000000"), ("exp", True), ("exp", float("nan")), ("iat", None), ("uep", True), ("uep", -1),
     ("uep", 1.5), ("fresh", "true"), ("fresh", 1), ("sub", 7), ("sub", ""), ("jti", ["a"]), ("sid", {})],
)
def test_claim_types(pol: TokenPolicy, name: str, value: Any) -> None:
    with pytest.raises(TokenError):
        validate_claims(payload(pol, **{name: value}), kid="k1", policy=pol, now=NOW)


def test_exp_with_leeway(pol: TokenPolicy) -> None:
    p = payload(pol)
    validate_claims(p, kid="k1", policy=pol, now=p["exp"] + pol.leeway - 0.001)
    with pytest.raises(TokenError) as exc:
        validate_claims(p, kid="k1", policy=pol, now=p["exp"] + pol.leeway)
    assert exc.value.reason == "expired"


@pytest.mark.parametrize("name", ["nbf", "iat"])
def test_not_before_and_issued_at_in_the_future(pol: TokenPolicy, name: str) -> None:
    validate_claims(payload(pol, **{name: NOW + pol.leeway}), kid="k1", policy=pol, now=NOW)
    with pytest.raises(TokenError) as exc:
        validate_claims(payload(pol, **{name: NOW + pol.leeway + 1}), kid="k1", policy=pol, now=NOW)
    assert exc.value.reason in {"not yet valid", "issued in the future"}
