"""Bearer tokens on ASGI: `RequireToken(fresh=..., scopes=[...])`, a FastAPI security dependency declared
through `HTTPBearer` and `SecurityScopes`, so that the OpenAPI document lists the bearer scheme (with the
scopes) on every route that needs it. The refusals are those of `sessionward.bearer`, as on Flask.

Locations: `Authorization: Bearer <token>` (strict: exactly one header, one space, a b64token), and for browser
apps the `__Host-access` cookie, whose unsafe requests must also pass the origin check and carry `X-CSRF-Token`
equal to the readable `__Host-csrf_access` cookie and to an HMAC of the token's `jti` (double submit bound to
the token). Each token is verified at most once per request.

DPoP (RFC 9449; `sessionward.web.dpop`), as on Flask: `Authorization: DPoP <token>` with `DPoP: <proof>`; a
key-bound token is accepted on any route only with a fresh, unspent proof from its key (`use_once` in the
store); `RequireToken(dpop=True)` refuses unbound tokens too. The refusals are the core's 401 answers, and the
bearer refusals name the scheme the client must use, as on Flask (RFC 9449 7.1, 7.2): `DPoP ..., algs="..."`
for a `DPoP`-scheme request or where DPoP is required (no credentials there: 401 `DPoP algs="..."`, no error
code), both challenges for no credentials under `allowed`.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from time import perf_counter
from typing import Any

from fastapi import Depends, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer, SecurityScopes
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response

from ..bearer import FreshTokenRequired, NoAuthorization, check_scope_names, check_scopes
from ..csrf import UNSAFE_METHODS
from ..exceptions import CSRFError, TokenError
from ..metrics import TOKEN_LATENCY
from ..tokens import Claims
from ..web import RequestState
from ..web.dpop import authorization, challenge_kind, check_resource, request_url
from .context import check_origin, context, cookie_values, csrf_failed, get_user, state

__all__ = [
    "ACCESS_COOKIE", "CSRF_ACCESS_COOKIE", "RequireToken", "TokenDependency", "bearer_scheme", "dpop_request_url",
    "get_claims", "set_access_cookies", "unset_access_cookies", "verify_token",
]

ACCESS_COOKIE = "__Host-access"
CSRF_ACCESS_COOKIE = "__Host-csrf_access"
LOCATIONS = frozenset({"headers", "cookies"})

#: The OpenAPI security scheme (`components.securitySchemes.bearerAuth`); it never refuses by itself.
bearer_scheme = HTTPBearer(
    auto_error=False, scheme_name="bearerAuth", bearerFormat="JWT",
    description="An access token from /api/login or /api/refresh (RFC 6750).",
)


def _locations(locations: Iterable[str]) -> frozenset[str]:
    where = frozenset([locations] if isinstance(locations, str) else locations)
    if not where or not where <= LOCATIONS:
        raise ValueError(f"locations must be a non-empty subset of {sorted(LOCATIONS)}")
    return where


def _find_token(conn: HTTPConnection, where: frozenset[str]) -> tuple[str | None, str | None, str]:
    """(token, "headers" or "cookies", scheme); a cookie counts as `Bearer`."""
    if "headers" in where:
        values = conn.headers.getlist("authorization")
        found = authorization(", ".join(values) if values else None, state(conn).dpop)  # two headers fail the shape
        if found is not None:
            return found[1], "headers", found[0]
    if "cookies" in where:
        values = cookie_values(conn, ACCESS_COOKIE)
        if len(values) > 1:
            raise TokenError("several access cookies")  # cookie tossing: trust none of them
        if values:
            return values[0], "cookies", "Bearer"
    return None, None, "Bearer"


def dpop_request_url(conn: HTTPConnection) -> str:
    """The URL a proof's `htu` must name: scheme and host as the app sees them (behind trusted proxies, as the
    service's ProxyFix set them), the raw path as the client sent it."""
    raw = conn.scope.get("raw_path")
    path = raw.decode("latin-1") if isinstance(raw, bytes) and raw.startswith(b"/") else conn.url.path
    return request_url(conn.url.scheme, conn.url.netloc, path)


async def _check_dpop(
    conn: HTTPConnection, token: str, scheme: str, claims: Claims, ctx: RequestState, *, require: bool
) -> None:
    """The DPoP rules for a verified token, once per token per request."""
    if token in ctx.dpop_checked:
        return
    st = state(conn)
    verifier = st.dpop
    now = st.clock.now()
    proof = check_resource(verifier, scheme=scheme, token=token, claims=claims, method=conn.scope.get("method", ""),
                           url=lambda: dpop_request_url(conn), proofs=lambda: conn.headers.getlist("dpop"), now=now,
                           require=require)
    if proof is not None:
        if not await st.store.use_once(proof.replay_key, until=proof.replay_until, now=now):
            raise verifier.replayed(proof)
        ctx.dpop_nonce = verifier.nonce_to_send(proof, now=now)
    ctx.dpop_checked.add(token)


async def _verify(conn: HTTPConnection, token: str) -> Claims:
    """`verify_access`, at most once per token per request."""
    ctx = context(conn)
    result = ctx.token_results.get(token)
    if result is None:
        started = perf_counter()
        try:
            result = await state(conn).token_service().verify_access(token)
        except TokenError as exc:
            result = exc
        finally:
            TOKEN_LATENCY.observe(perf_counter() - started)
        ctx.token_results[token] = result
    if isinstance(result, Exception):
        raise result
    return result


def _check_cookie_csrf(conn: HTTPConnection, claims: Claims) -> None:
    try:
        check_origin(conn)
        sent = conn.headers.get("x-csrf-token")
        cookies = cookie_values(conn, CSRF_ACCESS_COOKIE)
        if not sent or len(cookies) != 1 or not hmac.compare_digest(
            sent.encode("utf-8", "surrogatepass"), cookies[0].encode("utf-8", "surrogatepass")
        ):
            raise CSRFError("CSRF token missing or invalid.")
        state(conn).csrf.verify_access_cookie_token(claims.jti, sent)
    except CSRFError:
        csrf_failed(conn)
        raise


async def verify_token(
    conn: HTTPConnection, *, optional: bool = False, fresh: bool = False,
    locations: Iterable[str] = ("headers",), scopes: Iterable[str] = (), dpop: bool = False,
) -> Claims | None:
    """Verify this request's access token and make it the request's identity. Returns its `Claims`, or None
    when `optional` and no token came. `dpop=True` accepts DPoP-bound tokens only. Raises `NoAuthorization`,
    `InvalidAuthorizationHeader`, `TokenError`, `DPoPError`, `CSRFError`, `FreshTokenRequired`,
    `InsufficientScope`, `StoreUnavailable`."""
    ctx = context(conn)
    verifier = state(conn).dpop
    ctx.challenge = challenge_kind(verifier, scheme=None, require=dpop)  # no credentials (yet): RFC 9449 7.1, 7.2
    token, source, scheme = _find_token(conn, _locations(locations))
    if token is None:
        if optional:
            return None
        raise NoAuthorization()
    ctx.challenge = challenge_kind(verifier, scheme=scheme, require=dpop)
    claims = await _verify(conn, token)
    await _check_dpop(conn, token, scheme, claims, ctx, require=dpop)
    if source == "cookies" and conn.scope.get("method") in UNSAFE_METHODS:
        _check_cookie_csrf(conn, claims)
    ctx.identify(claims)  # current user is now the token's user; Cache-Control: no-store on the response
    if await get_user(conn) is None:
        ctx.claims = None  # a refused token is no identity, not even for error handlers
        raise TokenError("user gone or disabled")
    if fresh and not claims.fresh:
        raise FreshTokenRequired()
    check_scopes(claims, tuple(scopes))
    return claims


def get_claims(conn: HTTPConnection) -> Claims | None:
    """The `Claims` of the token verified in this request, or None."""
    return context(conn).claims


class TokenDependency:
    """The callable behind `RequireToken`: FastAPI passes the accumulated `SecurityScopes`."""

    def __init__(self, *, fresh: bool, optional: bool, locations: Iterable[str], dpop: bool = False) -> None:
        self.fresh = fresh
        self.optional = optional
        self.locations = _locations(locations)
        self.dpop = dpop

    async def __call__(
        self,
        request: Request,
        security_scopes: SecurityScopes,
        _credentials: HTTPAuthorizationCredentials | None = Depends(bearer_scheme),  # noqa: B008 - FastAPI's way
    ) -> Claims | None:
        return await verify_token(request, optional=self.optional, fresh=self.fresh, locations=self.locations,
                                  scopes=security_scopes.scopes, dpop=self.dpop)


def RequireToken(  # noqa: N802 - reads as a type in `Annotated[Claims, RequireToken(...)]`
    *, scopes: Iterable[str] = (), fresh: bool = False, optional: bool = False,
    locations: Iterable[str] = ("headers",), dpop: bool = False,
) -> Any:
    """A FastAPI dependency: the view runs only with a valid access token; its value is the token's `Claims`
    (None when `optional` and no token came). `fresh=True` needs a token from a recent password login (401
    `insufficient_user_authentication`), `scopes` are needed in the token's `scope` claim (403
    `insufficient_scope`), `dpop=True` a DPoP-bound token with its proof (401 `invalid_token`).
    Raises ValueError for bad `scopes` or `locations` at declaration."""
    needed = list(check_scope_names(scopes))
    return Security(TokenDependency(fresh=fresh, optional=optional, locations=locations, dpop=dpop), scopes=needed)


async def set_access_cookies(conn: HTTPConnection, response: Response, access_token: str) -> Response:
    """Put `access_token` in the HttpOnly `__Host-access` cookie and its double-submit CSRF value in the readable
    `__Host-csrf_access` cookie (both Secure, SameSite=Strict, Path=/, no Domain). Raises `TokenError`."""
    st = state(conn)
    tokens = st.token_service()
    claims = await tokens.verify_access(access_token)
    max_age = max(0, int(tokens.policy.access_ttl))
    response.set_cookie(ACCESS_COOKIE, access_token, max_age=max_age, path="/", secure=True, httponly=True,
                        samesite="strict")
    response.set_cookie(CSRF_ACCESS_COOKIE, st.csrf.access_cookie_token(claims.jti), max_age=max_age, path="/",
                        secure=True, httponly=False, samesite="strict")
    return response


def unset_access_cookies(response: Response) -> Response:
    """Expire both access cookies."""
    response.delete_cookie(ACCESS_COOKIE, path="/", secure=True, httponly=True, samesite="strict")
    response.delete_cookie(CSRF_ACCESS_COOKIE, path="/", secure=True, httponly=False, samesite="strict")
    return response
