"""Bearer tokens at the edge, for every framework: reading `Authorization: Bearer <token>` strictly, the
refusals of RFC 6750 3.1 (and RFC 9470 for step-up), and the scope check. No web framework.

- no bearer credentials: `NoAuthorization`, 401, `WWW-Authenticate: Bearer realm="sessionward"` (no error code);
- a malformed Authorization header (several parts, empty token, odd characters): `InvalidAuthorizationHeader`,
  400 `invalid_request`;
- a bad, expired or revoked token, or one whose user is gone or disabled: `TokenError`, 401 `invalid_token`;
- not fresh where a fresh token is needed: `FreshTokenRequired`, 401 `insufficient_user_authentication`;
- a `scope` the token lacks: `InsufficientScope`, 403 `insufficient_scope`.

Where DPoP is in play (RFC 9449 7.1, 7.2) the same refusals name the `DPoP` scheme with `algs` instead, or both
schemes for a request without credentials (`sessionward.web.dpop.www_authenticate`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from .exceptions import (
    AuthenticationError,
    PermissionDenied,
    ReauthenticationRequired,
    SessionwardError,
)
from .httpshape import bearer_challenge
from .tokens import Claims

__all__ = [
    "FreshTokenRequired", "InsufficientScope", "InvalidAuthorizationHeader", "NoAuthorization", "bearer_refusal",
    "check_scope_names", "check_scopes", "header_token",
]

_TOKEN68 = re.compile(r"[A-Za-z0-9\-._~+/]+=*")  # RFC 6750 2.1 b64token
_BEARER_OTHER_SPACE = re.compile(r"(?i)bearer\s")
_SCOPE = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")  # RFC 6749 3.3 scope-token


class NoAuthorization(AuthenticationError):
    """No bearer credentials in the request (401, `WWW-Authenticate: Bearer realm=...`, no error code)."""

    code = "authorization_required"

    def __init__(self) -> None:
        super().__init__("An access token is required.")


class InvalidAuthorizationHeader(SessionwardError):
    """The Authorization header is not `Bearer <token>` (400 `invalid_request`)."""

    code = "invalid_request"

    def __init__(self) -> None:
        super().__init__("The Authorization header must be exactly 'Bearer <token>'.")


class FreshTokenRequired(ReauthenticationRequired):
    """The token is valid but not fresh (401 `insufficient_user_authentication`, RFC 9470)."""

    code = "fresh_token_required"

    def __init__(self) -> None:
        super().__init__("This action needs a token from a recent password login. Please log in again.")


class InsufficientScope(PermissionDenied):
    """The token is valid but lacks a needed scope (403 `insufficient_scope`)."""

    code = "insufficient_scope"

    def __init__(self, scopes: Iterable[str]) -> None:
        self.scopes = tuple(scopes)
        super().__init__("The token does not allow this action.")


def bearer_refusal(
    exc: SessionwardError, challenge: Callable[..., str] = bearer_challenge
) -> tuple[int, str] | None:
    """(status, `WWW-Authenticate` value) for the four bearer refusals above; None for any other error.
    `challenge(**params)` spells the challenge: the RFC 6750 one, or where DPoP is in play the one of
    `sessionward.web.dpop.www_authenticate` (same parameters, the `DPoP` scheme with `algs`)."""
    if isinstance(exc, NoAuthorization):
        return 401, challenge()
    if isinstance(exc, InvalidAuthorizationHeader):
        return 400, challenge(error="invalid_request")
    if isinstance(exc, FreshTokenRequired):
        return 401, challenge(error="insufficient_user_authentication", error_description="A fresh login is required")
    if isinstance(exc, InsufficientScope):
        return 403, challenge(error="insufficient_scope", scope=" ".join(exc.scopes))
    return None


def header_token(value: str | None) -> str | None:
    """The bearer token of one Authorization header value; None if there is no bearer credential (no header,
    or another scheme). Raises `InvalidAuthorizationHeader` for a bearer header of the wrong shape (two headers
    joined by a comma fail it too: no token68 contains one)."""
    if value is None:
        return None
    scheme, _, rest = value.partition(" ")
    if scheme.lower() != "bearer":
        if _BEARER_OTHER_SPACE.match(value):
            raise InvalidAuthorizationHeader()  # "Bearer<TAB>token" and the like
        return None  # another scheme (Basic...): no bearer credentials
    if _TOKEN68.fullmatch(rest) is None:
        raise InvalidAuthorizationHeader()
    return rest


def check_scope_names(scopes: Iterable[str]) -> tuple[str, ...]:
    """`scopes` as a tuple. Raises ValueError unless each is an RFC 6749 scope token (checked at declaration)."""
    needed = tuple(scopes)
    if not all(isinstance(s, str) and _SCOPE.fullmatch(s) for s in needed):
        raise ValueError("scopes must be RFC 6749 scope tokens")
    return needed


def check_scopes(claims: Claims, needed: tuple[str, ...]) -> None:
    """Raise `InsufficientScope` unless the token's `scope` claim grants every one of `needed`."""
    if not needed:
        return
    granted = claims.extra.get("scope")
    have = set(granted.split(" ")) if isinstance(granted, str) else set()
    if not set(needed) <= have:
        raise InsufficientScope(needed)
