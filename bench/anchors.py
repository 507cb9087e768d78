"""The anchors: bare Flask (also with sessionward's response headers and nothing else), Flask's signed cookie,
Flask-Session + Redis, Flask-JWT-Extended with HS256 / ES256 / EdDSA and with a Redis blocklist (see `bench.apps`
for how variants are built and served)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Flask, abort

from .common import REDIS_PREFIX, _add_public, _cookie_header, _private_pem, _public_pem, _redis, _secret

# -- bare Flask -------------------------------------------------------------------------------------

def bare_setup(workdir: Path) -> dict[str, str]:
    return {}


def bare_app(workdir: Path) -> Flask:
    app = Flask("bench_bare")

    @app.get("/protected")
    def protected() -> Any:
        return "u1"

    _add_public(app)
    return app


def bare_headers_app(workdir: Path) -> Flask:
    """The bare view plus exactly the response headers sessionward adds to an authenticated answer (its
    `SecurityHeadersMiddleware`: the static security headers, `no-store`, `Vary: Cookie`), and nothing else: no
    session, no token. What those headers alone cost, which over HTTP is mostly gunicorn writing them and the
    load generator parsing them."""
    from flask import request

    from sessionward.flask.headers import AUTHENTICATED, SecurityHeadersMiddleware

    app = Flask("bench_bare_headers")

    @app.get("/protected")
    def protected() -> Any:
        request.environ[AUTHENTICATED] = True
        return "u1"

    _add_public(app)
    app.wsgi_app = SecurityHeadersMiddleware(app.wsgi_app)  # type: ignore[method-assign]
    return app


# -- Flask's signed cookie session --------------------------------------------------------------------

def flask_cookie_app(workdir: Path) -> Flask:

    app = Flask("bench_flask_cookie")
    app.secret_key = _secret(workdir, "flask_secret")

    return _session_routes(app)


def _session_routes(app: Flask) -> Flask:
    """The same login / protected / public views for both Flask-session anchors (signed cookie, Flask-Session)."""
    from flask import session

    @app.post("/login")
    def login() -> Any:
        session["user_id"] = "u1"
        return "ok"

    @app.get("/protected")
    def protected() -> Any:
        user_id = session.get("user_id")
        if user_id is None:
            abort(401)
        return user_id

    _add_public(app)
    return app


def _login_cookie(app: Flask) -> dict[str, str]:
    with app.test_client() as client:
        response = client.post("/login")
        assert response.status_code == 200, response.status_code
        return {"Cookie": _cookie_header(response.headers.getlist("Set-Cookie"))}


def flask_cookie_setup(workdir: Path) -> dict[str, str]:
    return _login_cookie(flask_cookie_app(workdir))


# -- Flask-Session 0.8 on Redis ----------------------------------------------------------------------

def flask_session_app(workdir: Path) -> Flask:
    from flask_session import Session

    app = Flask("bench_flask_session")
    app.secret_key = _secret(workdir, "flask_secret")
    app.config.update(SESSION_TYPE="redis", SESSION_REDIS=_redis(), SESSION_KEY_PREFIX=REDIS_PREFIX + "fs:")
    Session(app)

    return _session_routes(app)


def flask_session_setup(workdir: Path) -> dict[str, str]:
    return _login_cookie(flask_session_app(workdir))


# -- Flask-JWT-Extended ------------------------------------------------------------------------------

def _fje_app(workdir: Path, alg: str, *, blocklist: bool) -> Flask:
    from flask_jwt_extended import JWTManager, get_jwt_identity, jwt_required

    app = Flask(f"bench_fje_{alg}{'_bl' if blocklist else ''}")
    app.config["JWT_ALGORITHM"] = alg
    if alg == "HS256":
        app.config["JWT_SECRET_KEY"] = _secret(workdir, "fje_hs256").hex()
    else:
        app.config["JWT_PRIVATE_KEY"] = _private_pem(workdir, alg)
        app.config["JWT_PUBLIC_KEY"] = _public_pem(workdir, alg)
    jwt = JWTManager(app)
    if blocklist:
        client = _redis()

        @jwt.token_in_blocklist_loader
        def revoked(_header: dict[str, Any], payload: dict[str, Any]) -> bool:
            return client.get(REDIS_PREFIX + "fje:bl:" + payload["jti"]) is not None

    @app.get("/protected")
    @jwt_required()
    def protected() -> Any:
        return get_jwt_identity()

    _add_public(app)
    return app


def _fje_setup(alg: str, blocklist: bool) -> Callable[[Path], dict[str, str]]:
    def setup(workdir: Path) -> dict[str, str]:
        from datetime import timedelta

        from flask_jwt_extended import create_access_token

        app = _fje_app(workdir, alg, blocklist=blocklist)
        with app.app_context():
            token = create_access_token(identity="u1", expires_delta=timedelta(hours=2))
        return {"Authorization": f"Bearer {token}"}

    return setup


def _fje_tokens(alg: str, blocklist: bool) -> Callable[[Path, int], list[dict[str, str]]]:
    """n distinct tokens (each its own jti) for the same identity."""
    def tokens(workdir: Path, n: int) -> list[dict[str, str]]:
        from datetime import timedelta

        from flask_jwt_extended import create_access_token

        app = _fje_app(workdir, alg, blocklist=blocklist)
        with app.app_context():
            return [{"Authorization": f"Bearer {create_access_token(identity='u1', expires_delta=timedelta(hours=2))}"}
                    for _ in range(n)]

    return tokens


def _fje_make(alg: str, blocklist: bool) -> Callable[[Path], Flask]:
    return lambda workdir: _fje_app(workdir, alg, blocklist=blocklist)
