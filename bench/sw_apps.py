"""sessionward's apps: cookie sessions and JWT (`jwt_required`, or the core `verify_access` alone) on SQLite, on
Redis, and on Redis with the local cache, each opening its store from settings as an application does
(`SESSIONWARD_STORE_URL`, on Redis `SESSIONWARD_REDIS_PREFIX` and `SESSIONWARD_LOCAL_CACHE`).

A variant with the local cache (a `CachedStore`) waits in `make_app` until the cache is healthy (`wait_healthy`:
subscribed, heartbeat answered, denylist loaded), so no timing sees its start-up read-through; `close_app` stops
its threads afterwards.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Flask, abort, request

from .common import AUDIENCE, ISSUER, PASSWORD, REDIS_PREFIX, REDIS_URL, USERNAME, _add_public, _private_pem, _secret

# -- sessionward: stores as an application configures them ----------------------------------------

#: The sessionward store prefix of this run; the local cache's invalidation channel is `<prefix>inval`.
SW_PREFIX = REDIS_PREFIX + "sw:"


def _sw_store_config(workdir: Path, backend: str, cache: bool) -> dict[str, Any]:
    """The store settings an application would use: `SESSIONWARD_STORE_URL`, and on Redis the key prefix and
    `SESSIONWARD_LOCAL_CACHE` (on Redis every writer publishes invalidations, with or without the cache)."""
    if backend == "redis":
        return {"SESSIONWARD_STORE_URL": REDIS_URL, "SESSIONWARD_REDIS_PREFIX": SW_PREFIX,
                "SESSIONWARD_LOCAL_CACHE": "1" if cache else "0"}
    if cache:
        raise ValueError("the local cache needs Redis")
    return {"SESSIONWARD_STORE_URL": f"sqlite:///{workdir / 'sw_store.sqlite3'}"}


def _sw_open_store(workdir: Path, backend: str, cache: bool) -> Any:
    """The store the extension opens from the same settings (`Settings.from_mapping`)."""
    from sessionward.assembly import open_settings_store
    from sessionward.settings import Settings

    return open_settings_store(Settings.from_mapping(_sw_store_config(workdir, backend, cache)))


def ready_store(store: Any, cache: bool) -> None:
    """Before timing: a local cache must be subscribed, its heartbeat fresh and its denylist loaded, or the
    run would time its read-through path. Raises RuntimeError if it does not get there in 15 s."""
    if cache and not store.wait_healthy(timeout=15.0):
        raise RuntimeError("the local cache did not become healthy (Redis pub/sub down?)")


def app_stores(app: Flask) -> list[Any]:
    """The session stores an app built (the extension's, the bench core app's token service's)."""
    from sessionward.flask.extension import EXTENSION_KEY

    stores = []
    st = app.extensions.get(EXTENSION_KEY)
    if st is not None:
        stores.append(st.store)
    service = app.extensions.get("bench_tokens")
    if service is not None:
        stores.append(service._store)
    return stores


def close_app(app: Flask) -> None:
    """Close the app's stores: a local cache stops its subscriber threads, Redis clients and SQL engines close."""
    for store in app_stores(app):
        store.close()


def _sw_cookie_app(workdir: Path, backend: str, *, load_user: bool = False, cache: bool = False) -> Flask:
    from sessionward.flask import Sessionward, get_session, get_user
    from sessionward.passwords import Argon2idHasher

    app = Flask(f"bench_sw_cookie_{backend}{'_cache' if cache else ''}")
    app.config.update(
        SESSIONWARD_DATABASE_URL=f"sqlite:///{workdir / 'sw_users.sqlite3'}",
        SESSIONWARD_CSRF_KEY=_secret(workdir, "sw_csrf"),
        **_sw_store_config(workdir, backend, cache),
    )
    # The hasher only matters for logins (measured separately with the real parameters).
    st = Sessionward().init_app(app, hasher=Argon2idHasher.insecure_for_tests())
    ready_store(st.store, cache)

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
        try:
            with app.app_context():
                st = state()
                user = st.users.get_by_username(USERNAME) or st.users.create(USERNAME, PASSWORD)
                session = st.sessions.login(user.id, user_agent="bench", ip="127.0.0.1")
                return {"Cookie": f"{st.cookie.name}={session.secret}"}
        finally:
            close_app(app)

    return setup


def _sw_cookie_make(backend: str, load_user: bool = False, cache: bool = False) -> Callable[[Path], Flask]:
    return lambda workdir: _sw_cookie_app(workdir, backend, load_user=load_user, cache=cache)


# -- sessionward: JWT --------------------------------------------------------------------------------

def _sw_signing_key(workdir: Path, alg: str) -> Any:
    from cryptography.hazmat.primitives import serialization

    from sessionward.tokens import SigningKey

    if alg == "HS256":
        material: Any = _secret(workdir, "sw_hs256")
    else:
        material = serialization.load_pem_private_key(_private_pem(workdir, alg, "sw"), password=None)
    return SigningKey(kid=f"bench-{alg.lower()}", alg=alg, private=material)  # type: ignore[arg-type]


def _sw_token_service(workdir: Path, alg: str, backend: str, cache: bool) -> Any:
    """The same service the extension builds for the same workdir (same keys, store and policy)."""
    from sessionward.tokens import KeySet, TokenPolicy, TokenService

    store = _sw_open_store(workdir, backend, cache)
    ready_store(store, cache)
    return TokenService(
        store=store,
        keys=KeySet([_sw_signing_key(workdir, alg)]),
        refresh_key=_secret(workdir, "sw_refresh"),
        policy=TokenPolicy(issuer=ISSUER, audience=AUDIENCE, access_ttl=3600),
    )


def _sw_jwt_core_app(workdir: Path, alg: str, backend: str, cache: bool = False) -> Flask:
    """The core alone: `TokenService.verify_access` behind a decorator of the bench's own (parse
    `Authorization: Bearer`, verify, 401 on `TokenError`), without the extension's user lookup and headers."""
    import functools

    from sessionward.exceptions import TokenError

    app = Flask(f"bench_sw_jwt_core_{alg}_{backend}{'_cache' if cache else ''}")
    service = _sw_token_service(workdir, alg, backend, cache)
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


def _sw_jwt_app(workdir: Path, alg: str, backend: str, cache: bool = False, **settings: Any) -> Flask:
    """The extension: `Sessionward` with tokens, `@jwt_required()` and `get_jwt_identity()`, as an application
    would use them (the extension also refuses tokens whose user is gone or disabled: one user lookup).
    `settings`: more `SESSIONWARD_*` settings."""
    from sessionward.flask import Sessionward, get_jwt_identity, jwt_required
    from sessionward.passwords import Argon2idHasher
    from sessionward.tokens import KeySet

    app = Flask(f"bench_sw_jwt_{alg}_{backend}{'_cache' if cache else ''}")
    app.config.update(
        SESSIONWARD_DATABASE_URL=f"sqlite:///{workdir / 'sw_users.sqlite3'}",
        SESSIONWARD_CSRF_KEY=_secret(workdir, "sw_csrf"),
        SESSIONWARD_REFRESH_KEY=_secret(workdir, "sw_refresh"),
        SESSIONWARD_ISSUER=ISSUER,
        SESSIONWARD_AUDIENCE=AUDIENCE,
        SESSIONWARD_ACCESS_TTL=3600,
        **_sw_store_config(workdir, backend, cache),
        **settings,
    )
    st = Sessionward().init_app(app, hasher=Argon2idHasher.insecure_for_tests(),
                                token_keys=KeySet([_sw_signing_key(workdir, alg)]))
    ready_store(st.store, cache)

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
        try:
            with app.app_context():
                st = state()
                user = st.users.get_by_username(USERNAME) or st.users.create(USERNAME, PASSWORD)
                pair = token_service().issue(user.id, fresh=True)
            return {"Authorization": f"Bearer {pair.access_token}"}
        finally:
            close_app(app)

    return setup


def _sw_jwt_tokens(alg: str, backend: str) -> Callable[[Path, int], list[dict[str, str]]]:
    """n distinct access tokens (each its own jti) of one token family of the bench user, signed by the
    service's own key as a refresh would sign them (`TokenService._sign`, without n store writes): only the
    verified-token cache is cold, the family, user and keys are those of the hot rows."""
    def tokens(workdir: Path, n: int) -> list[dict[str, str]]:
        from sessionward.flask import state, token_service

        app = _sw_jwt_app(workdir, alg, backend)
        try:
            with app.app_context():
                st = state()
                service = token_service()
                user = st.users.get_by_username(USERNAME) or st.users.create(USERNAME, PASSWORD)
                pair = service.issue(user.id, fresh=True)
                now = st.clock.now()
                record = st.store.get(pair.family_id, now=now)
                return [{"Authorization": f"Bearer {service._sign(record, epoch=record.epoch, fresh=False, now=now)}"}
                        for _ in range(n)]
        finally:
            close_app(app)

    return tokens


def _sw_jwt_make(alg: str, backend: str, core: bool = False, cache: bool = False) -> Callable[[Path], Flask]:
    if core:
        return lambda workdir: _sw_jwt_core_app(workdir, alg, backend, cache)
    return lambda workdir: _sw_jwt_app(workdir, alg, backend, cache)
