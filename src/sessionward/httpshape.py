"""The HTTP shape of sessionward's answers, as plain data shared by the Flask extension and the ASGI adapter:
the one error body `{"error": {"code", "message"}}`, the status of each refusal, the RFC 6750 challenge (realm
in every one), the security headers (ASVS 3.4, C11) and the plain error page for browsers. No web framework."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from .exceptions import (
    AuthenticationError,
    ConfigError,
    NotFound,
    Overloaded,
    PermissionDenied,
    SessionwardError,
    StoreUnavailable,
    Throttled,
    TokenError,
    ValidationError,
)

__all__ = [
    "CSP", "ERROR_PAGE", "HSTS", "HTTP_ERRORS", "REALM", "STATIC_HEADERS", "STORE_RETRY_AFTER", "STORE_UNAVAILABLE",
    "TITLES", "ErrorAnswer", "bearer_challenge", "error_answer", "error_body", "http_error", "status_for",
]

STORE_RETRY_AFTER = 5
REALM = "sessionward"
STORE_UNAVAILABLE = ("store_unavailable", "The session store is unavailable. Please try again shortly.")

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)

STATIC_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    # no `interest-cohort=()`: FLoC was withdrawn (2022) and browsers log the unknown feature as an error
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}

HSTS = "max-age=63072000; includeSubDomains"

#: The plain page for a browser (a Jinja template: autoescaped by whoever renders it).
ERROR_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{{ status }} {{ title }}</title>
<link rel="stylesheet" href="/static/style.css"></head><body><main class="card"><h1>{{ title }}</h1>
<p>{{ message }}</p><p><a href="/">Home</a></p></main></body></html>"""

TITLES = {
    400: "Bad request", 401: "Not signed in", 403: "Forbidden", 404: "Not found", 405: "Method not allowed",
    413: "Too large", 415: "Unsupported media type", 422: "Not acceptable", 429: "Too many attempts",
    503: "Service unavailable",
}

#: Plain HTTP errors (no route, wrong method, body too large ...): (code, message), the very words Werkzeug
#: uses, so that the Flask and the ASGI service answer alike.
HTTP_ERRORS = {
    400: ("bad_request", "The browser (or proxy) sent a request that this server could not understand."),
    404: ("not_found", "The requested URL was not found on the server. If you entered the URL manually please "
                       "check your spelling and try again."),
    405: ("method_not_allowed", "The method is not allowed for the requested URL."),
    413: ("request_entity_too_large", "The data value transmitted exceeds the capacity limit."),
    415: ("unsupported_media_type", "The server does not support the media type transmitted in the request."),
}


def http_error(status: int) -> tuple[str, str]:
    """(code, message) for a plain HTTP error status."""
    if status in HTTP_ERRORS:
        return HTTP_ERRORS[status]
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return phrase.lower().replace(" ", "_").replace("-", "_"), phrase


def bearer_challenge(**params: str) -> str:
    """The `WWW-Authenticate` value of every bearer refusal: the realm, then `params` (RFC 6750 3)."""
    return "Bearer " + ", ".join(f'{k}="{v}"' for k, v in {"realm": REALM, **params}.items())


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


#: The status of each kind of refusal: the first class that matches wins (so `Throttled` before its base).
_STATUS: tuple[tuple[type[SessionwardError], int], ...] = (
    (Throttled, HTTPStatus.TOO_MANY_REQUESTS),
    (AuthenticationError, HTTPStatus.UNAUTHORIZED),
    (PermissionDenied, HTTPStatus.FORBIDDEN),
    (NotFound, HTTPStatus.NOT_FOUND),
    (ValidationError, HTTPStatus.UNPROCESSABLE_ENTITY),
    (StoreUnavailable, HTTPStatus.SERVICE_UNAVAILABLE),
    (Overloaded, HTTPStatus.SERVICE_UNAVAILABLE),
)


def status_for(exc: SessionwardError) -> int:
    """The HTTP status for `exc`; 400 for any other `SessionwardError`."""
    return int(next((status for cls, status in _STATUS if isinstance(exc, cls)), HTTPStatus.BAD_REQUEST))


@dataclass(frozen=True)
class ErrorAnswer:
    """What to answer for a refusal, whatever the framework: the status, the error body's `code` and `message`
    (`error_body`, or the plain page for a browser) and the headers to add."""

    status: int
    code: str
    message: str
    headers: dict[str, str] = field(default_factory=dict)


def error_answer(
    exc: SessionwardError,
    *,
    path: str,
    wants_json: bool,
    log: logging.Logger,
    token_challenge: Callable[..., str] = bearer_challenge,
) -> ErrorAnswer:
    """The answer for a `SessionwardError` a view raised: `status_for` its status, `Retry-After` on 429 and 503,
    the RFC 6750 challenge for a bad token (`Session` instead of `Bearer` on a 401 to a browser, `wants_json`
    false), a generic text for a store that is down (logged on `log` and as the `store_unavailable` event with
    the request's `path`) and for a configuration error (500). Never the store's or the setting's own words.
    `token_challenge(error=...)` makes the challenge of a refused token (the adapter's: `DPoP` where the token
    check chose it, RFC 9449 7.1)."""
    status = status_for(exc)
    headers: dict[str, str] = {}
    code = getattr(exc, "code", "error")
    message = str(exc)
    if isinstance(exc, (Throttled, Overloaded)):
        headers["Retry-After"] = str(exc.retry_after)
    if isinstance(exc, StoreUnavailable):
        from . import events

        log.warning("store unavailable: %s", exc)
        with contextlib.suppress(Exception):  # logging must never turn a 503 into a 500
            events.emit("store_unavailable", level=logging.WARNING, path=path)
        headers["Retry-After"] = str(STORE_RETRY_AFTER)
        code, message = STORE_UNAVAILABLE
    if isinstance(exc, TokenError):
        headers["WWW-Authenticate"] = token_challenge(error="invalid_token")
    elif status == HTTPStatus.UNAUTHORIZED:
        headers["WWW-Authenticate"] = bearer_challenge() if wants_json else "Session"
    if isinstance(exc, ConfigError):
        status, message = 500, "Server misconfigured."
    return ErrorAnswer(status, code, message, headers)
