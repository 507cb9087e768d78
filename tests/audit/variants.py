"""Broken variants of sessionward's reference service, each with ONE defence switched off, for the audit's
tests. Test-side only: the service is built with `create_app` and wrapped or patched here, never through a
switch in production code. Served over HTTPS by Werkzeug's server (threaded) in a subprocess:

    python variants.py NAME INSTANCE_DIR PORT      (the password of user `admin` comes from $AUDIT_ADMIN_PASSWORD)

Prints "ready" once listening. NAME is one of VARIANTS (or "none" for the unchanged service).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

#: variant -> the audit check that must catch it (and be the only finding above info)
VARIANTS = {
    "no-httponly": "cookie-httponly",
    "no-csp": "headers-csp",
    "logout-csrf-exempt": "csrf-missing-token",
    "logout-keeps-session": "logout-replay",
    "token-logout-no-revocation": "token-no-revocation",
    "no-throttle": "login-throttle",
}


def _rewrite_headers(app: Callable[..., Iterable[bytes]],
                     fix: Callable[[list[tuple[str, str]]], list[tuple[str, str]]]) -> Callable[..., Iterable[bytes]]:
    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            return start_response(status, fix(headers), exc_info) if exc_info else start_response(status, fix(headers))

        return app(environ, start)

    return wrapped


def _strip_httponly(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    out = []
    for name, value in headers:
        if name.lower() == "set-cookie" and value.startswith("__Host-session="):
            out.append((name, "; ".join(p for p in value.split("; ") if p.lower() != "httponly")))
        else:
            out.append((name, value))
    return out


def build(name: str, instance: Path) -> Any:
    from flask import Response

    from sessionward.app import create_app
    from sessionward.flask import csrf_exempt, jwt_required

    config: dict[str, Any] = {}
    if name == "no-throttle":
        config = {"SESSIONWARD_THROTTLE_ACCOUNT_FREE": 100000, "SESSIONWARD_THROTTLE_ADDRESS_FREE": 100000}
    app = create_app(instance, config=config)
    if name == "no-httponly":
        app.wsgi_app = _rewrite_headers(app.wsgi_app, _strip_httponly)  # type: ignore[method-assign]
    elif name == "no-csp":
        app.wsgi_app = _rewrite_headers(  # type: ignore[method-assign]
            app.wsgi_app, lambda hs: [(k, v) for k, v in hs if k.lower() != "content-security-policy"])
    elif name == "logout-csrf-exempt":
        csrf_exempt(app.view_functions["web.logout"])
    elif name == "logout-keeps-session":
        app.extensions["sessionward"].sessions.logout = lambda *a, **k: None  # the cookie goes, the record stays
    elif name == "token-logout-no-revocation":
        @csrf_exempt
        @jwt_required()
        def logout_without_revocation() -> Response:
            return Response(status=204)

        app.view_functions["api.logout"] = logout_without_revocation
    elif name not in ("none", "no-throttle"):
        raise SystemExit(f"unknown variant {name!r}")
    return app


def main() -> None:
    name, instance, port = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    instance.mkdir(mode=0o700, parents=True, exist_ok=True)
    from werkzeug.serving import run_simple

    from sessionward.app.instance import ensure_certificate
    from sessionward.cli import open_services

    app = build(name, instance)
    open_services(str(instance)).users.create("admin", os.environ["AUDIT_ADMIN_PASSWORD"])
    cert, key = ensure_certificate(instance)
    print("ready", flush=True)
    run_simple("127.0.0.1", port, app, threaded=True, ssl_context=(str(cert), str(key)))


if __name__ == "__main__":
    main()
