"""Bearer tokens in Flask: the names lab users know from Flask-JWT-Extended, on sessionward's `TokenService`.

- The `TokenService` is built once, at start-up, from `SESSIONWARD_*` settings (`sessionward.settings`; a wrong
  one raises `ConfigError` naming it) into `state().tokens` (None without `SESSIONWARD_REFRESH_KEY`).
- `jwt_required(fresh=False, optional=False, locations=("headers",), scopes=())`, `verify_jwt_in_request()`,
  `get_jwt()`, `get_jwt_identity()`; `current_user` (from the extension) is the token's user once verified.
- Each token is verified at most once per request (results kept in the request's `RequestState`).

Locations: `Authorization: Bearer <token>` (exactly one header, scheme case-insensitive, one space, nothing
else; never the query string or a form field), and, for browser apps, the `__Host-access` cookie. A cookie is
sent by the browser on its own, so an unsafe request authenticated by it must also pass the origin check and
carry `X-CSRF-Token` equal both to the readable `__Host-csrf_access` cookie and to an HMAC of the token's `jti`
under the CSRF key (a double-submit value bound to the token: an attacker who can plant cookies cannot make a
matching pair). `set_access_cookies` / `unset_access_cookies` write and clear both cookies.

Refusals (RFC 6750 3.1; RFC 9470 for step-up):
- no bearer credentials: 401, `WWW-Authenticate: Bearer realm="sessionward"` (no error code);
- a malformed Authorization header (several parts, empty token, odd characters): 400 `invalid_request`;
- a bad, expired or revoked token, or one whose user is gone or disabled: 401 `invalid_token`;
- `fresh=True` and the token is not fresh: 401 `insufficient_user_authentication` (RFC 9470: the token is
  valid, but the login behind it is not recent enough; the cure is a new password login, not more rights);
- `scopes` the token's `scope` claim lacks: 403 `insufficient_scope` (RFC 6750: valid but insufficient).

DPoP (RFC 9449; `sessionward.web.dpop`): `Authorization: DPoP <token>` with a `DPoP: <proof>` header. A token
bound to a key (`cnf.jkt`) is accepted on any route only with a fresh proof from that key, whose `jti` the store
has never seen (`use_once`, shared by every instance); `jwt_required(dpop=True)` also refuses unbound tokens.
Refusals: 401 with the core's `WWW-Authenticate: DPoP error="invalid_token" | "invalid_dpop_proof" |
"use_dpop_nonce", error_description=..., algs="..."` (and `DPoP-Nonce`); a malformed `Authorization: DPoP`
header is 400 `DPoP error="invalid_request"`. The bearer refusals above name the scheme the client must use
(RFC 9449 7.1, 7.2): `DPoP error=..., algs="..."` for a request that used the `DPoP` scheme or where DPoP is
required (`SESSIONWARD_DPOP=required`, `dpop=True`), so no credentials there is 401 `DPoP algs="..."` (no error
code); no credentials under `allowed` is 401 `Bearer realm="sessionward", DPoP algs="..."`. With server nonces
on, a successful answer carries a fresh `DPoP-Nonce` when the client's is missing or half-way through its
lifetime.
"""

from __future__ import annotations

import functools
import hmac
from collections.abc import Callable, Iterable
from time import perf_counter
from typing import TYPE_CHECKING, Any, TypeVar, cast, overload

from flask import Flask, Request, Response, jsonify, request

from ..bearer import (
    FreshTokenRequired,
    InsufficientScope,
    InvalidAuthorizationHeader,
    NoAuthorization,
    bearer_refusal,
    check_scope_names,
    check_scopes,
    header_token,
)
from ..csrf import UNSAFE_METHODS
from ..dpop import DPoPError
from ..exceptions import (
    ConfigError,
    CSRFError,
    SessionwardError,
    TokenError,
)
from ..metrics import TOKEN_LATENCY
from ..tokens import Claims, TokenService
from ..web import RequestState, SessionwardState
from ..web.dpop import authorization, challenge_kind, check_resource, path_from_wsgi, request_url
from .context import check_origin, csrf_failed, request_cookies, request_method, request_state, state, user_of
from .errors import error_response, token_challenge

if TYPE_CHECKING:
    from werkzeug.local import LocalProxy

__all__ = [
    "ACCESS_COOKIE",
    "CSRF_ACCESS_COOKIE",
    "FreshTokenRequired",
    "InsufficientScope",
    "InvalidAuthorizationHeader",
    "NoAuthorization",
    "csrf_value",
    "dpop_request_url",
    "dpop_resource_error",
    "dpop_token_endpoint_error",
    "get_jwt",
    "get_jwt_claims",
    "get_jwt_identity",
    "jwt_required",
    "register_token_errors",
    "set_access_cookies",
    "token_service",
    "unset_access_cookies",
    "verify_jwt_in_request",
]

F = TypeVar("F", bound=Callable[..., Any])

ACCESS_COOKIE = "__Host-access"
CSRF_ACCESS_COOKIE = "__Host-csrf_access"
CSRF_HEADER = "X-CSRF-Token"
LOCATIONS = frozenset({"headers", "cookies"})



def register_token_errors(app: Flask) -> None:
    """Register the bearer refusals (RFC 6750 challenges; the DPoP scheme where DPoP is in play, RFC 9449 7.1)."""
    # Flask picks the handler of the most specific class, so these win over the generic SessionwardError one.
    def handle(exc: SessionwardError) -> Response:
        refusal = bearer_refusal(exc, token_challenge)
        assert refusal is not None  # noqa: S101 - registered for the four bearer refusals only
        status, challenge = refusal
        return error_response(status, exc.code, str(exc), headers={"WWW-Authenticate": challenge})  # type: ignore[attr-defined]

    for refusal_class in (NoAuthorization, InvalidAuthorizationHeader, FreshTokenRequired, InsufficientScope):
        app.register_error_handler(refusal_class, handle)
    app.register_error_handler(DPoPError, dpop_resource_error)


def dpop_resource_error(exc: DPoPError) -> Response:
    """A DPoP refusal at a protected resource: 401 and the core's `WWW-Authenticate: DPoP ...` (RFC 9449 7.1)."""
    return error_response(exc.status, exc.error, exc.description, headers=exc.resource_headers())


def dpop_token_endpoint_error(exc: DPoPError) -> Response:
    """A DPoP refusal at the token endpoint (login, refresh): 400 `{"error": ..., "error_description": ...}`
    (RFC 9449 5, 8; RFC 6749 5.2) with `DPoP-Nonce` when the client must use one."""
    response = jsonify(exc.token_endpoint_body())
    response.status_code = exc.token_endpoint_status
    for name, value in exc.token_endpoint_headers().items():
        response.headers[name] = value
    return response


#: The request object behind Flask's `request` proxy: the proxy's own lookup (its context variable), done once
#: per call instead of once per `request.x`.
_current_request: Callable[[], Request] = cast("LocalProxy[Request]", request)._get_current_object


def dpop_proofs() -> list[str]:
    """The request's `DPoP` header values. WSGI servers join repeated headers into one `HTTP_DPOP` with commas,
    which no compact JWS contains, so two proofs never pass as one; read directly, not by scanning every header
    of the environ as `request.headers.getlist` does."""
    value = _current_request().environ.get("HTTP_DPOP")
    return [] if value is None else [value]


def dpop_request_url() -> str:
    """The URL a proof's `htu` must name: scheme and host as the app sees them (behind trusted proxies, from
    the forwarded headers ProxyFix applied), the path as the client sent it."""
    current = _current_request()  # the request object once: each `request.x` is a lookup through the proxy
    return request_url(current.scheme, current.host, path_from_wsgi(current.environ))


def token_service() -> TokenService:
    """This app's `TokenService`. Raises `ConfigError` if tokens were not configured."""
    service = state().tokens
    if service is None:
        raise ConfigError("SESSIONWARD_REFRESH_KEY", "tokens are not configured for this app")
    return service


# -- finding the token ---------------------------------------------------------------------------

def _header_token(st: SessionwardState, environ: dict[str, Any]) -> tuple[str, str] | None:
    """(scheme, token) from the one Authorization header (`Bearer` or `DPoP`); None without such credentials."""
    # WSGI gives one HTTP_AUTHORIZATION (servers join repeated headers with commas, which no token68
    # contains, so two headers fail the shape check below); reading it directly skips a scan of the environ.
    value = environ.get("HTTP_AUTHORIZATION")
    verifier = st.dpop
    if verifier is None:
        token = header_token(value)
        return None if token is None else ("Bearer", token)
    return authorization(value, verifier)


def _cookie_token() -> str | None:
    values = request_cookies().getlist(ACCESS_COOKIE)
    if not values:
        return None
    if len(values) > 1:
        raise TokenError("several access cookies")  # cookie tossing: trust none of them
    return values[0]


def csrf_value(claims: Claims) -> str:
    """The double-submit value for a cookie-carried token: an HMAC of its `jti` under the CSRF key."""
    return state().csrf.access_cookie_token(claims.jti)


def _check_cookie_csrf(claims: Claims, st: SessionwardState) -> None:
    try:
        check_origin(st)
        sent = request.headers.get(CSRF_HEADER)
        cookies = request_cookies().getlist(CSRF_ACCESS_COOKIE)
        if not sent or len(cookies) != 1 or not hmac.compare_digest(
            sent.encode("utf-8", "surrogatepass"), cookies[0].encode("utf-8", "surrogatepass")
        ):
            raise CSRFError("CSRF token missing or invalid.")
        st.csrf.verify_access_cookie_token(claims.jti, sent)
    except CSRFError:
        csrf_failed()
        raise


def _verify(token: str, rs: RequestState, st: SessionwardState) -> Claims:
    """`TokenService.verify_access`, at most once per token per request."""
    results = rs.token_results
    result = results.get(token)
    if result is None:
        service = st.tokens
        if service is None:
            raise ConfigError("SESSIONWARD_REFRESH_KEY", "tokens are not configured for this app")
        try:
            started = perf_counter()
            try:
                result = service.verify_access(token)
            finally:
                TOKEN_LATENCY.observe(perf_counter() - started)
        except TokenError as exc:
            result = exc
        results[token] = result
    if isinstance(result, TokenError):
        raise result
    return result


def _check_dpop(
    token: str, scheme: str, claims: Claims, rs: RequestState, st: SessionwardState, *, method: str, require: bool
) -> None:
    """The DPoP rules for a verified token (see the module docstring), once per token per request."""
    if token in rs.dpop_checked:
        return
    verifier = st.dpop
    if verifier is None:
        return
    now = st.clock.now()
    proof = check_resource(verifier, scheme=scheme, token=token, claims=claims, method=method,
                           url=dpop_request_url, proofs=dpop_proofs, now=now,
                           require=require)
    if proof is not None:
        if not st.store.use_once(proof.replay_key, until=proof.replay_until, now=now):
            raise verifier.replayed(proof)
        rs.dpop_nonce = verifier.nonce_to_send(proof, now=now)
    rs.dpop_checked.add(token)


def verify_jwt_in_request(
    *, optional: bool = False, fresh: bool = False, locations: Iterable[str] = ("headers",), scopes: Iterable[str] = (),
    dpop: bool = False,
) -> Claims | None:
    """Verify this request's access token and make it the request's identity. Returns its `Claims`, or None
    when `optional` and no token came. `dpop=True` accepts DPoP-bound tokens only. Raises `NoAuthorization`,
    `InvalidAuthorizationHeader`, `TokenError`, `DPoPError`, `CSRFError`, `FreshTokenRequired`,
    `InsufficientScope`, `StoreUnavailable`."""
    environ = request.environ  # the request and the app looked up once here and handed down: each lookup
    st = state()  # goes through Flask's context proxies
    rs = request_state(environ)
    method = request_method(environ)
    verifier = st.dpop
    rs.challenge = challenge_kind(verifier, scheme=None, require=dpop)  # no credentials (yet): RFC 9449 7.1, 7.2
    token, source, scheme = _find_token(_check_locations(locations), st, environ)
    if token is None:
        if optional:
            return None
        raise NoAuthorization()
    rs.challenge = challenge_kind(verifier, scheme=scheme, require=dpop)
    claims = _verify(token, rs, st)
    _check_dpop(token, scheme, claims, rs, st, method=method, require=dpop)
    if source == "cookies" and method in UNSAFE_METHODS:
        _check_cookie_csrf(claims, st)
    rs.identify(claims)  # current_user is now the token's user; Cache-Control: no-store on the response
    if user_of(rs, st) is None:
        rs.claims = None  # a refused token is no identity, not even for error handlers
        raise TokenError("user gone or disabled")
    if fresh and not claims.fresh:
        raise FreshTokenRequired()
    check_scopes(claims, tuple(scopes))
    return claims


def _find_token(
    where: frozenset[str], st: SessionwardState, environ: dict[str, Any]
) -> tuple[str | None, str | None, str]:
    """(token, "headers" or "cookies", scheme) from the first location in `where` that has one; a cookie
    counts as `Bearer`."""
    if "headers" in where:
        found = _header_token(st, environ)
        if found is not None:
            return found[1], "headers", found[0]
    if "cookies" in where:
        token = _cookie_token()
        if token is not None:
            return token, "cookies", "Bearer"
    return None, None, "Bearer"


def _check_locations(locations: Iterable[str]) -> frozenset[str]:
    if type(locations) is frozenset and locations and locations <= LOCATIONS:
        return locations  # jwt_required passes the set it checked at decoration time
    where = frozenset([locations] if isinstance(locations, str) else locations)
    if not where or not where <= LOCATIONS:
        raise ValueError(f"locations must be a non-empty subset of {sorted(LOCATIONS)}")
    return where


@overload
def jwt_required(fn: F, /) -> F: ...


@overload
def jwt_required(
    *,
    fresh: bool = ...,
    optional: bool = ...,
    locations: Iterable[str] = ...,
    scopes: Iterable[str] = ...,
    dpop: bool = ...,
) -> Callable[[F], F]: ...


def jwt_required(
    fn: F | None = None,
    /,
    *,
    fresh: bool = False,
    optional: bool = False,
    locations: Iterable[str] = ("headers",),
    scopes: Iterable[str] = (),
    dpop: bool = False,
) -> F | Callable[[F], F]:
    """Decorator: the view runs only with a valid access token (see `verify_jwt_in_request`; `dpop=True`: only
    a DPoP-bound one, with its proof). Usable as `@jwt_required()` (Flask-JWT-Extended style) and
    `@jwt_required`. Raises ValueError for bad `locations` or scopes at decoration time. A non-optional view is
    exempt from the cookie-session CSRF check: with a header token no CSRF is possible, and a cookie token gets
    its own double-submit check."""
    where = _check_locations(locations)
    needed = check_scope_names(scopes)

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            verify_jwt_in_request(optional=optional, fresh=fresh, locations=where, scopes=needed, dpop=dpop)
            return view(*args, **kwargs)

        if not optional:
            wrapper._sw_csrf_exempt = True  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate(fn) if fn is not None else decorate


def get_jwt() -> dict[str, Any]:
    """The claims of the token verified in this request as a dict (empty if none), like Flask-JWT-Extended."""
    claims = request_state().claims
    if claims is None:
        return {}
    return {
        **claims.extra,
        "sub": claims.sub, "sid": claims.sid, "jti": claims.jti, "iat": claims.iat, "nbf": claims.nbf,
        "exp": claims.exp, "fresh": claims.fresh, "uep": claims.epoch,
    }


def get_jwt_identity() -> str | None:
    """The `sub` (user id) of the token verified in this request, or None."""
    claims = request_state().claims
    return None if claims is None else claims.sub


def get_jwt_claims() -> Claims | None:
    """The verified `Claims` object of this request, or None."""
    return request_state().claims


# -- cookies for browser apps -------------------------------------------------------------------

def set_access_cookies(response: Response, access_token: str) -> Response:
    """Put `access_token` in the HttpOnly `__Host-access` cookie and its double-submit CSRF value in the
    readable `__Host-csrf_access` cookie (both Secure, SameSite=Strict, Path=/, no Domain). The token is
    verified first. Raises `TokenError`."""
    claims = token_service().verify_access(access_token)
    max_age = max(0, int(token_service().policy.access_ttl))
    response.set_cookie(ACCESS_COOKIE, access_token, max_age=max_age, path="/", secure=True, httponly=True,
                        samesite="Strict")
    response.set_cookie(CSRF_ACCESS_COOKIE, csrf_value(claims), max_age=max_age, path="/", secure=True,
                        httponly=False, samesite="Strict")
    return response


def unset_access_cookies(response: Response) -> Response:
    """Expire both access cookies."""
    response.delete_cookie(ACCESS_COOKIE, path="/", secure=True, httponly=True, samesite="Strict")
    response.delete_cookie(CSRF_ACCESS_COOKIE, path="/", secure=True, httponly=False, samesite="Strict")
    return response
