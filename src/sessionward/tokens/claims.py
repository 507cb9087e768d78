"""The token policy, and access-token claims: how they are built and how they are checked.

Checks here run only after the signature has been verified (T1), except `check_header`, which decides
which one key may verify the token. Every refusal raises `TokenError` with a short `reason` for logs.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ..exceptions import ConfigError, TokenError
from .keys import ALGORITHMS

__all__ = [
    "ACCESS_TOKEN_TYPE",
    "Claims",
    "RESERVED_CLAIMS",
    "TokenPolicy",
    "build_access_claims",
    "check_extra_claims",
    "check_header",
    "check_time",
    "validate_claims",
]

#: The JOSE `typ` of access tokens (RFC 9068 2.1). Anything else, or no `typ`, is refused.
ACCESS_TOKEN_TYPE = "at+jwt"

#: Claims sessionward sets itself; `extra_claims` may not override them.
RESERVED_CLAIMS = frozenset({"iss", "aud", "sub", "iat", "nbf", "exp", "jti", "sid", "uep", "fresh"})

#: The only header parameters an access token may carry. Everything else is refused: `crit` (we understand no
#: extension, RFC 7515 4.1.11), `jwk`/`jku`/`x5u`/`x5c`/`x5t` (keys come only from our key set, RFC 8725 3.10),
#: `b64`, `zip`, `cty` and whatever else may be invented.
ALLOWED_HEADER = frozenset({"alg", "typ", "kid"})
_KEY_BEARING_HEADERS = frozenset({"jwk", "jku", "x5u", "x5c", "x5t", "x5t#S256"})

DAY = 24 * 60 * 60
MAX_NAME_CHARS = 255  #: issuer and audience
MIN_TOKEN_BYTES, MAX_TOKEN_BYTES = 1024, 65536  #: the range allowed for `max_token_bytes`


def _seconds(setting: str, value: object, *, minimum: float = 0.0, maximum: float, allow_zero: bool = False) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise ConfigError(setting, f"must be a number of seconds, got {value!r}")
    if value < minimum or (value == 0 and not allow_zero) or value > maximum:
        raise ConfigError(setting, f"must be between {minimum} and {maximum} seconds, got {value!r}")


@dataclass(frozen=True, slots=True)
class TokenPolicy:
    """Lifetimes and limits of access and refresh tokens. Raises `ConfigError` naming the bad setting."""

    issuer: str
    audience: str
    access_ttl: float = 15 * 60
    refresh_idle: float = 14 * DAY  #: a family must be used within this time, or it dies
    refresh_absolute: float = 30 * DAY  #: a family dies this long after login, used or not
    leeway: float = 30  #: clock skew allowed for exp/nbf/iat
    max_token_bytes: int = 8192  #: longer access tokens are refused before any parsing
    reuse_grace: float = 0.0  #: seconds in which the refresh token just spent may be presented again (0 = off)

    def __post_init__(self) -> None:
        for setting, value in (("TOKEN_ISSUER", self.issuer), ("TOKEN_AUDIENCE", self.audience)):
            if not isinstance(value, str) or not value or value != value.strip() or len(value) > MAX_NAME_CHARS:
                raise ConfigError(setting, "must be a non-empty string without surrounding spaces (<= 255 chars)")
        _seconds("TOKEN_ACCESS_TTL", self.access_ttl, minimum=10, maximum=DAY)
        _seconds("TOKEN_REFRESH_IDLE", self.refresh_idle, minimum=60, maximum=365 * DAY)
        _seconds("TOKEN_REFRESH_ABSOLUTE", self.refresh_absolute, minimum=60, maximum=365 * DAY)
        _seconds("TOKEN_LEEWAY", self.leeway, maximum=300, allow_zero=True)
        _seconds("TOKEN_REUSE_GRACE", self.reuse_grace, maximum=60, allow_zero=True)
        if self.refresh_idle > self.refresh_absolute:
            raise ConfigError("TOKEN_REFRESH_IDLE", "must not exceed TOKEN_REFRESH_ABSOLUTE")
        if self.access_ttl > self.refresh_idle:
            raise ConfigError("TOKEN_ACCESS_TTL", "must not exceed TOKEN_REFRESH_IDLE")
        if self.leeway >= self.access_ttl:
            raise ConfigError("TOKEN_LEEWAY", "must be shorter than TOKEN_ACCESS_TTL")
        mtb = self.max_token_bytes
        if not isinstance(mtb, int) or isinstance(mtb, bool) or not MIN_TOKEN_BYTES <= mtb <= MAX_TOKEN_BYTES:
            raise ConfigError("TOKEN_MAX_BYTES", "must be a whole number of bytes between 1024 and 65536")

    @property
    def max_token_lifetime(self) -> float:
        """How long after signing a token may still verify: keys are kept at least this long once superseded."""
        return self.access_ttl + self.leeway


@dataclass(frozen=True, slots=True)
class Claims:
    """A verified access token's claims. `extra` holds the claims an application added at issue time."""

    sub: str
    sid: str  #: the token family (a `SessionRecord` id)
    jti: str
    iat: float
    nbf: float
    exp: float
    fresh: bool  #: true only in the access token issued right after a password login
    epoch: int  #: the user's revocation epoch when the token was issued (`uep`)
    kid: str
    extra: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def user_id(self) -> str:
        return self.sub


def check_extra_claims(extra: Mapping[str, Any] | None) -> dict[str, Any]:
    """A copy of an application's extra claims. Raises ValueError for a reserved name or a non-string name,
    TypeError if they are not JSON-serialisable."""
    payload = dict(extra or {})
    if not all(isinstance(name, str) for name in payload):
        raise ValueError("extra claim names must be strings")
    clash = RESERVED_CLAIMS.intersection(payload)
    if clash:
        raise ValueError(f"extra claims may not set {sorted(clash)}")
    json.dumps(payload)
    return payload


def build_access_claims(
    policy: TokenPolicy,
    *,
    user_id: str,
    family_id: str,
    epoch: int,
    fresh: bool,
    now: float,
    jti: str,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The payload of a new access token. Raises ValueError if `extra` tries to set a reserved claim."""
    if not isinstance(user_id, str) or not user_id:
        raise ValueError("user_id must be a non-empty string")
    payload = check_extra_claims(extra)
    issued = int(now)
    payload.update(
        iss=policy.issuer,
        aud=policy.audience,
        sub=user_id,
        iat=issued,
        nbf=issued,
        exp=issued + int(policy.access_ttl),
        jti=jti,
        sid=family_id,
        uep=int(epoch),
        fresh=bool(fresh),
    )
    return payload


def check_header(header: Mapping[str, Any]) -> tuple[str, str]:
    """Check an (unverified) JOSE header against the allow-list; returns `(alg, kid)`.

    Raises `TokenError` for `none` in any spelling, an algorithm we do not use, `crit`, key-bearing or any
    other extra parameter, a missing/other `typ`, a missing or non-string `kid`.
    """
    alg = header.get("alg")
    if not isinstance(alg, str):
        raise TokenError("alg missing")
    if alg.strip().lower() == "none":
        raise TokenError("alg none")
    extra = set(header) - ALLOWED_HEADER
    if "crit" in extra:
        raise TokenError("crit header refused")
    if extra & _KEY_BEARING_HEADERS:
        raise TokenError("key-bearing header refused")
    if extra:
        raise TokenError("unknown header parameter")
    if alg not in ALGORITHMS:
        raise TokenError("alg not allowed")
    if header.get("typ") != ACCESS_TOKEN_TYPE:
        raise TokenError("typ is not at+jwt")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise TokenError("kid missing")
    return alg, kid


#: the `extra` of a token with only the reserved claims (all of them are required, so the count says it)
_NO_EXTRA: Mapping[str, Any] = MappingProxyType({})


def _number(payload: Mapping[str, Any], name: str) -> float:
    value = payload.get(name)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise TokenError(f"claim {name} missing or not a number")
    return float(value)


def _string(payload: Mapping[str, Any], name: str, *, max_len: int = 255) -> str:
    value = payload.get(name)
    if not isinstance(value, str) or not value or len(value) > max_len:
        raise TokenError(f"claim {name} missing or not a string")
    return value


def check_time(claims: Claims, policy: TokenPolicy, *, now: float) -> None:
    """`exp` (required), `nbf` and `iat` against `now`, with the policy's leeway. Raises `TokenError`."""
    if now >= claims.exp + policy.leeway:
        raise TokenError("expired")
    if claims.nbf > now + policy.leeway:
        raise TokenError("not yet valid")
    if claims.iat > now + policy.leeway:
        raise TokenError("issued in the future")


def validate_claims(payload: Mapping[str, Any], *, kid: str, policy: TokenPolicy, now: float) -> Claims:
    """Check a signature-verified payload: required claims with the right types, `iss` and `aud` equal to
    ours (exactly: no substring, no list), times. Raises `TokenError`."""
    if not isinstance(payload, dict):  # what the JSON parser makes of an object
        raise TokenError("payload is not an object")
    get = payload.get
    # Exact string equality, and only strings: `"iss": ["https://a"]` or a substring never pass
    # (PyJWT CVE-2024-53861 was a substring check).
    iss, aud = get("iss"), get("aud")
    if type(iss) is not str or iss != policy.issuer:
        raise TokenError("wrong issuer")
    if type(aud) is not str or aud != policy.audience:
        raise TokenError("wrong audience")
    exp, iat, nbf = _number(payload, "exp"), _number(payload, "iat"), _number(payload, "nbf")
    uep = get("uep")
    if type(uep) is not int or uep < 0:  # `bool` is an int subclass: `type(...) is int` refuses it
        raise TokenError("claim uep missing or not an integer")
    fresh = get("fresh")
    if type(fresh) is not bool:
        raise TokenError("claim fresh missing or not a boolean")
    claims = Claims(
        sub=_string(payload, "sub"),
        sid=_string(payload, "sid", max_len=64),
        jti=_string(payload, "jti", max_len=64),
        iat=iat,
        nbf=nbf,
        exp=exp,
        fresh=fresh,
        epoch=uep,
        kid=kid,
        extra=_NO_EXTRA if len(payload) == len(RESERVED_CLAIMS) else MappingProxyType(
            {k: v for k, v in payload.items() if k not in RESERVED_CLAIMS}
        ),
    )
    check_time(claims, policy, now=now)
    return claims
