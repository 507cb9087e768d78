"""Security headers on every response (ASVS 3.4, C11). Plain data, one function."""

from __future__ import annotations

from flask import Response

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
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), interest-cohort=()",
}

HSTS = "max-age=63072000; includeSubDomains"


_STATIC = tuple(STATIC_HEADERS.items())
_STATIC_TLS = (*_STATIC, ("Strict-Transport-Security", HSTS))


def apply_security_headers(response: Response, *, is_secure: bool, authenticated: bool) -> None:
    headers = response.headers
    wanted = _STATIC_TLS if is_secure else _STATIC
    present = {name.lower() for name in headers.keys()}
    headers.extend([(name, value) for name, value in wanted if name.lower() not in present])  # a view's own win
    if authenticated:
        response.headers["Cache-Control"] = "no-store"
        response.headers["Pragma"] = "no-cache"
        vary = response.headers.get("Vary")
        if not vary or "cookie" not in vary.lower():
            response.headers["Vary"] = f"{vary}, Cookie" if vary else "Cookie"
