"""`SecurityHeadersMiddleware` (C11, ASVS 3.4): every answer gets the security headers once, a header the view
set itself wins, and an authenticated answer is never cacheable whatever the view said."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pytest

from sessionward.flask.headers import AUTHENTICATED, HSTS, STATIC_HEADERS, SecurityHeadersMiddleware


def _answer(view_headers: list[tuple[str, str]], *, https: bool = True, authenticated: bool = False
            ) -> list[tuple[str, str]]:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if authenticated:
            environ[AUTHENTICATED] = True
        start_response("200 OK", list(view_headers))
        return [b"ok"]

    sent: list[list[tuple[str, str]]] = []
    environ = {"wsgi.url_scheme": "https" if https else "http"}
    body = SecurityHeadersMiddleware(app)(environ, lambda status, headers, exc_info=None: sent.append(headers))
    assert list(body) == [b"ok"]
    return sent[0]


def _values(headers: list[tuple[str, str]], name: str) -> list[str]:
    return [v for k, v in headers if k.lower() == name.lower()]


@pytest.mark.parametrize("https", [True, False])
def test_every_static_header_once_and_hsts_only_over_https(https: bool) -> None:
    headers = _answer([("Content-Type", "text/plain")], https=https)
    for name, value in STATIC_HEADERS.items():
        assert _values(headers, name) == [value]
    assert _values(headers, "Strict-Transport-Security") == ([HSTS] if https else [])
    assert _values(headers, "Cache-Control") == []  # a public answer stays cacheable


def test_a_header_the_view_set_wins_and_is_not_doubled() -> None:
    headers = _answer([("content-security-policy", "default-src 'none'"), ("Content-Type", "text/plain")])
    assert _values(headers, "Content-Security-Policy") == ["default-src 'none'"]
    assert _values(headers, "X-Frame-Options") == ["DENY"]  # the others still come


def test_an_authenticated_answer_is_never_cacheable() -> None:
    headers = _answer([("Content-Type", "text/plain")], authenticated=True)
    assert _values(headers, "Cache-Control") == ["no-store"]
    assert _values(headers, "Pragma") == ["no-cache"]
    assert _values(headers, "Vary") == ["Cookie"]


def test_an_authenticated_answer_overrides_the_views_caching_headers() -> None:
    headers = _answer([("Cache-Control", "public, max-age=600"), ("pragma", "cache"), ("Vary", "Accept"),
                       ("Content-Type", "text/plain")], authenticated=True)
    assert _values(headers, "Cache-Control") == ["no-store"]
    assert _values(headers, "Pragma") == ["no-cache"]
    assert _values(headers, "Vary") == ["Accept, Cookie"]
    for name, value in STATIC_HEADERS.items():
        assert _values(headers, name) == [value]
