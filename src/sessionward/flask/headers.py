"""Security headers on every response (ASVS 3.4, C11): the values as plain data, and the WSGI middleware that
adds them."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ..httpshape import CSP, HSTS, STATIC_HEADERS

__all__ = ["AUTHENTICATED", "CSP", "HSTS", "STATIC_HEADERS", "SecurityHeadersMiddleware"]

AUTHENTICATED = "sessionward.authenticated"  #: environ key: this response carries an authenticated answer

_STATIC = tuple((name.lower(), name, value) for name, value in STATIC_HEADERS.items())
_STATIC_TLS = (*_STATIC, ("strict-transport-security", "Strict-Transport-Security", HSTS))
#: per scheme: (the lower-case names, the headers as sent when the view set none of them)
_WANTED = {
    False: (frozenset(lname for lname, _, _ in _STATIC), [(name, value) for _, name, value in _STATIC]),
    True: (frozenset(lname for lname, _, _ in _STATIC_TLS), [(name, value) for _, name, value in _STATIC_TLS]),
}
_NO_STORE = (("Cache-Control", "no-store"), ("Pragma", "no-cache"))
_CACHE_HEADERS = frozenset({"cache-control", "pragma", "vary"})


class SecurityHeadersMiddleware:
    """Adds the security headers (C11) to every response at the WSGI layer, error pages included: one list
    concatenation per response instead of a validated `Headers` call per header. A header the view set
    itself wins, except that authenticated answers (environ[AUTHENTICATED]) always get `no-store`."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            https = environ.get("wsgi.url_scheme") == "https"
            names, extra = _WANTED[https]
            authenticated = environ.get(AUTHENTICATED)
            for name, _ in headers:
                lname = name.lower()
                if lname in names or (authenticated and lname in _CACHE_HEADERS):
                    headers, extra = _merge(headers, https, bool(authenticated))
                    break
            else:
                if authenticated:
                    headers = [*headers, *_NO_STORE, ("Vary", "Cookie")]
            if exc_info:
                return start_response(status, headers + extra, exc_info)
            return start_response(status, headers + extra)

        return self.app(environ, start)


def _merge(
    headers: list[tuple[str, str]], https: bool, authenticated: bool
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The slow path, when the view set a security or caching header itself: (the view's headers, with
    `no-store` forced on an authenticated answer; the security headers the view did not set)."""
    present = {name.lower() for name, _ in headers}
    extra = [(name, value) for lname, name, value in (_STATIC_TLS if https else _STATIC) if lname not in present]
    if authenticated:
        kept: list[tuple[str, str]] = []
        vary = ""
        for name, value in headers:
            lname = name.lower()
            if lname == "vary":
                vary = value
            elif lname not in ("cache-control", "pragma"):
                kept.append((name, value))
        if "cookie" not in vary.lower():
            vary = f"{vary}, Cookie" if vary else "Cookie"
        headers = [*kept, *_NO_STORE, ("Vary", vary)]
    return headers, extra
