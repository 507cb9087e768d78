"""The apps under test: the anchors (bare Flask, Flask's signed cookie, Flask-Session + Redis,
Flask-JWT-Extended with HS256 / ES256 / EdDSA / a Redis blocklist) and sessionward's equivalents.

Every variant is built in two steps so that gunicorn workers can serve exactly what the parent measured:

- `setup(workdir)` runs once in the parent: it makes the persistent state (SQLite files, keys, Redis keys, a
  user and a signed-in session or token) and returns the request headers of an authenticated client;
- `make_app(workdir)` builds the Flask app from that state (in the parent for in-process runs, in each
  gunicorn worker for HTTP runs, see `bench.wsgi`).

Each app has `/protected` (needs the credential; returns the user id) and `/public` (no authentication; the
client still sends its credential, as a browser sends its cookie to every page).
Redis keys all start with `bench:<run id>:` in db 15; `cleanup_redis` removes exactly those of this run.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from flask import Flask, abort, jsonify, request

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
#: Each run has its own key prefix (inherited by its gunicorn workers through the environment), so two runs
#: never remove each other's keys.
RUN_ID = os.environ.setdefault("BENCH_RUN", secrets.token_hex(4))
REDIS_PREFIX = f"bench:{RUN_ID}:"
USERNAME = "bench-user"
PASSWORD = "correct horse battery staple 42"
ISSUER = "https://bench.sessionward.test"
AUDIENCE = "bench-api"


@dataclass(frozen=True)
class Variant:
    name: str
    label: str
    group: str  # "bare", "cookie", "jwt", "jwt-revocable"
    family: str  # "anchor", "sessionward" or "what-if" (a lower bound for a suggested fix, see bench.whatif)
    setup: Callable[[Path], dict[str, str]]
    make_app: Callable[[Path], Flask]
    needs_redis: bool = False
    http: bool = True  # also measured over HTTP


def _redis() -> Any:
    import redis

    return redis.Redis.from_url(REDIS_URL)


def cleanup_redis(prefix: str = REDIS_PREFIX) -> int:
    """Delete every key of this run (prefix `bench:<run id>:`, or a narrower one) in the bench database.
    Returns how many."""
    if not prefix.startswith(REDIS_PREFIX):
        raise ValueError("only the bench's own keys may be removed")
    client = _redis()
    n = 0
    batch: list[bytes] = []
    for key in client.scan_iter(match=prefix + "*", count=10_000):
        batch.append(key)
        if len(batch) >= 10_000:
            n += client.unlink(*batch)
            batch.clear()
    if batch:
        n += client.unlink(*batch)
    return n


def _state(workdir: Path) -> dict[str, Any]:
    path = workdir / "state.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _save_state(workdir: Path, **values: Any) -> None:
    state = _state(workdir)
    state.update(values)
    (workdir / "state.json").write_text(json.dumps(state))


def _secret(workdir: Path, name: str, nbytes: int = 32) -> bytes:
    path = workdir / f"{name}.key"
    if not path.exists():
        path.write_text(secrets.token_bytes(nbytes).hex())
    return bytes.fromhex(path.read_text())


def _private_pem(workdir: Path, alg: str, owner: str = "fje") -> bytes:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    path = workdir / f"{owner}_{alg}.pem"
    if not path.exists():
        key = ec.generate_private_key(ec.SECP256R1()) if alg == "ES256" else ed25519.Ed25519PrivateKey.generate()
        path.write_bytes(
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        )
    return path.read_bytes()


def _public_pem(workdir: Path, alg: str) -> bytes:
    from cryptography.hazmat.primitives import serialization

    private = serialization.load_pem_private_key(_private_pem(workdir, alg), password=None)
    return private.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _add_public(app: Flask) -> None:
    @app.get("/public")
    def public() -> Any:
        return "public page"


def _cookie_header(set_cookie: list[str]) -> str:
    return "; ".join(c.split(";", 1)[0] for c in set_cookie)


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


# -- Flask's signed cookie session --------------------------------------------------------------------

def flask_cookie_app(workdir: Path) -> Flask:
    from flask import session

    app = Flask("bench_flask_cookie")
    app.secret_key = _secret(workdir, "flask_secret")

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
    from flask import session
    from flask_session import Session

    app = Flask("bench_flask_session")
    app.secret_key = _secret(workdir, "flask_secret")
    app.config.update(SESSION_TYPE="redis", SESSION_REDIS=_redis(), SESSION_KEY_PREFIX=REDIS_PREFIX + "fs:")
    Session(app)

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


def _fje_make(alg: str, blocklist: bool) -> Callable[[Path], Flask]:
    return lambda workdir: _fje_app(workdir, alg, blocklist=blocklist)


# -- sessionward: cookie sessions --------------------------------------------------------------------

def _sw_store(workdir: Path, backend: str) -> Any:
    from sessionward.stores.redis import RedisStore
    from sessionward.stores.sql import SQLStore

    if backend == "redis":
        return RedisStore.from_url(REDIS_URL, prefix=REDIS_PREFIX + "sw:")
    return SQLStore.from_url(f"sqlite:///{workdir / 'sw_store.sqlite3'}")


def _sw_cookie_app(workdir: Path, backend: str, *, load_user: bool = False) -> Flask:
    from sessionward.flask import Sessionward, get_session, get_user
    from sessionward.passwords import PasswordHasher

    app = Flask(f"bench_sw_cookie_{backend}")
    app.config.update(
        SESSIONWARD_DATABASE_URL=f"sqlite:///{workdir / 'sw_users.sqlite3'}",
        SESSIONWARD_CSRF_KEY=_secret(workdir, "sw_csrf"),
    )
    # The hasher only matters for logins (measured separately with the real parameters).
    Sessionward().init_app(app, store=_sw_store(workdir, backend), hasher=PasswordHasher.insecure_for_tests())

    @app.get("/protected")
    def protected() -> Any:
        if load_user:
            user = get_user()
            if user is None:
                abort(401)
            return user.id
        session = get_session()
        if session is None:
            abort(401)
        return session.user_id

    _add_public(app)
    return app


def _sw_cookie_setup(backend: str) -> Callable[[Path], dict[str, str]]:
    def setup(workdir: Path) -> dict[str, str]:
        from sessionward.flask import state

        app = _sw_cookie_app(workdir, backend)
        with app.app_context():
            st = state()
            user = st.users.get_by_username(USERNAME) or st.users.create(USERNAME, PASSWORD)
            session = st.sessions.login(user.id, user_agent="bench", ip="127.0.0.1")
            return {"Cookie": f"{st.cookie.name}={session.secret}"}

    return setup


def _sw_cookie_make(backend: str, load_user: bool = False) -> Callable[[Path], Flask]:
    return lambda workdir: _sw_cookie_app(workdir, backend, load_user=load_user)


# -- sessionward: JWT --------------------------------------------------------------------------------

def _sw_signing_key(workdir: Path, alg: str) -> Any:
    from cryptography.hazmat.primitives import serialization

    from sessionward.tokens import SigningKey

    if alg == "HS256":
        material: Any = _secret(workdir, "sw_hs256")
    else:
        material = serialization.load_pem_private_key(_private_pem(workdir, alg, "sw"), password=None)
    return SigningKey(kid=f"bench-{alg.lower()}", alg=alg, private=material)  # type: ignore[arg-type]


def _sw_token_service(workdir: Path, alg: str, backend: str) -> Any:
    """The same service the extension builds for the same workdir (same keys, store and policy)."""
    from sessionward.tokens import KeySet, TokenPolicy, TokenService

    return TokenService(
        store=_sw_store(workdir, backend),
        keys=KeySet([_sw_signing_key(workdir, alg)]),
        refresh_key=_secret(workdir, "sw_refresh"),
        policy=TokenPolicy(issuer=ISSUER, audience=AUDIENCE, access_ttl=3600),
    )


def _sw_jwt_core_app(workdir: Path, alg: str, backend: str) -> Flask:
    """The core alone: `TokenService.verify_access` behind a decorator of the bench's own (parse
    `Authorization: Bearer`, verify, 401 on `TokenError`), without the extension's user lookup and headers."""
    import functools

    from sessionward.exceptions import TokenError

    app = Flask(f"bench_sw_jwt_core_{alg}_{backend}")
    service = _sw_token_service(workdir, alg, backend)
    app.extensions["bench_tokens"] = service

    def bearer_required(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            scheme, _, token = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not token:
                abort(401)
            try:
                claims = service.verify_access(token)
            except TokenError:
                abort(401)
            return view(claims, *args, **kwargs)

        return wrapper

    @app.get("/protected")
    @bearer_required
    def protected(claims: Any) -> Any:
        return claims.sub

    _add_public(app)
    return app


def _sw_jwt_app(workdir: Path, alg: str, backend: str) -> Flask:
    """The extension: `Sessionward` with tokens, `@jwt_required()` and `get_jwt_identity()`, as an application
    would use them (the extension also refuses tokens whose user is gone or disabled: one user lookup)."""
    from sessionward.flask import Sessionward, get_jwt_identity, jwt_required
    from sessionward.passwords import PasswordHasher
    from sessionward.tokens import KeySet

    app = Flask(f"bench_sw_jwt_{alg}_{backend}")
    app.config.update(
        SESSIONWARD_DATABASE_URL=f"sqlite:///{workdir / 'sw_users.sqlite3'}",
        SESSIONWARD_CSRF_KEY=_secret(workdir, "sw_csrf"),
        SESSIONWARD_REFRESH_KEY=_secret(workdir, "sw_refresh"),
        SESSIONWARD_ISSUER=ISSUER,
        SESSIONWARD_AUDIENCE=AUDIENCE,
        SESSIONWARD_ACCESS_TTL=3600,
    )
    Sessionward().init_app(app, store=_sw_store(workdir, backend), hasher=PasswordHasher.insecure_for_tests(),
                           token_keys=KeySet([_sw_signing_key(workdir, alg)]))

    @app.get("/protected")
    @jwt_required()
    def protected() -> Any:
        return get_jwt_identity()

    _add_public(app)
    return app


def _sw_jwt_setup(alg: str, backend: str) -> Callable[[Path], dict[str, str]]:
    def setup(workdir: Path) -> dict[str, str]:
        from sessionward.flask import state, token_service

        app = _sw_jwt_app(workdir, alg, backend)
        with app.app_context():
            st = state()
            user = st.users.get_by_username(USERNAME) or st.users.create(USERNAME, PASSWORD)
            pair = token_service().issue(user.id, fresh=True)
        return {"Authorization": f"Bearer {pair.access_token}"}

    return setup


def _sw_jwt_make(alg: str, backend: str, core: bool = False) -> Callable[[Path], Flask]:
    if core:
        return lambda workdir: _sw_jwt_core_app(workdir, alg, backend)
    return lambda workdir: _sw_jwt_app(workdir, alg, backend)


# -- the list ----------------------------------------------------------------------------------------

VARIANTS: list[Variant] = [
    Variant("bare", "bare Flask view", "bare", "anchor", bare_setup, bare_app),
    Variant("flask_cookie", "Flask signed cookie", "cookie", "anchor", flask_cookie_setup, flask_cookie_app),
    Variant("flask_session_redis", "Flask-Session 0.8 + Redis", "cookie", "anchor", flask_session_setup,
            flask_session_app, needs_redis=True),
    Variant("fje_hs256", "FJE HS256", "jwt", "anchor", _fje_setup("HS256", False), _fje_make("HS256", False)),
    Variant("fje_es256", "FJE ES256", "jwt", "anchor", _fje_setup("ES256", False), _fje_make("ES256", False)),
    Variant("fje_eddsa", "FJE EdDSA", "jwt", "anchor", _fje_setup("EdDSA", False), _fje_make("EdDSA", False)),
    Variant("fje_hs256_redis_bl", "FJE HS256 + Redis blocklist", "jwt-revocable", "anchor",
            _fje_setup("HS256", True), _fje_make("HS256", True), needs_redis=True),
    Variant("sw_cookie_sqlite", "sw cookie session, SQLite", "cookie", "sessionward",
            _sw_cookie_setup("sqlite"), _sw_cookie_make("sqlite")),
    Variant("sw_cookie_sqlite_user", "sw cookie session, SQLite, + user row (get_user)", "cookie", "sessionward",
            _sw_cookie_setup("sqlite"), _sw_cookie_make("sqlite", load_user=True)),
    Variant("sw_cookie_redis", "sw cookie session, Redis", "cookie", "sessionward",
            _sw_cookie_setup("redis"), _sw_cookie_make("redis"), needs_redis=True),
    Variant("sw_jwt_hs256", "sw JWT HS256 (jwt_required, SQLite store)", "jwt", "sessionward",
            _sw_jwt_setup("HS256", "sqlite"), _sw_jwt_make("HS256", "sqlite")),
    Variant("sw_jwt_hs256_core", "sw JWT HS256, core verify_access only (SQLite store)", "jwt", "sessionward",
            _sw_jwt_setup("HS256", "sqlite"), _sw_jwt_make("HS256", "sqlite", core=True)),
    Variant("sw_jwt_es256", "sw JWT ES256 (jwt_required, SQLite store)", "jwt", "sessionward",
            _sw_jwt_setup("ES256", "sqlite"), _sw_jwt_make("ES256", "sqlite")),
    Variant("sw_jwt_eddsa", "sw JWT EdDSA (jwt_required, SQLite store)", "jwt", "sessionward",
            _sw_jwt_setup("EdDSA", "sqlite"), _sw_jwt_make("EdDSA", "sqlite")),
    Variant("sw_jwt_hs256_redis", "sw JWT HS256 (jwt_required), revocation on Redis", "jwt-revocable",
            "sessionward", _sw_jwt_setup("HS256", "redis"), _sw_jwt_make("HS256", "redis"), needs_redis=True),
]


def _whatif(name: str) -> Callable[[Path], Flask]:
    def make(workdir: Path) -> Flask:
        from . import whatif

        return getattr(whatif, name)(workdir)  # type: ignore[no-any-return]

    return make


VARIANTS += [
    Variant("whatif_cookie_sqlite", "what-if: sw cookie session, SQLite reads at sqlite3 speed", "cookie", "what-if",
            _sw_cookie_setup("sqlite"), _whatif("sqlite_cookie_app"), http=False),
    Variant("whatif_jwt_core_local", "what-if: sw JWT HS256 core, revocation from a local cache", "jwt-revocable",
            "what-if", _sw_jwt_setup("HS256", "redis"), _whatif("jwt_core_local_app"), needs_redis=True, http=False),
    Variant("whatif_jwt_local", "what-if: sw JWT HS256 (jwt_required), revocation from a local cache",
            "jwt-revocable", "what-if", _sw_jwt_setup("HS256", "redis"), _whatif("jwt_local_app"), needs_redis=True,
            http=False),
]

BY_NAME = {v.name: v for v in VARIANTS}
