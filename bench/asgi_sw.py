"""sessionward's ASGI apps for the ASGI part, built from the public adapter as an application builds them
(`Sessionward(app, settings)`, `get_session`, `RequireToken`; imported at module level: FastAPI resolves the
`Annotated[...]` of a view in the module's globals): cookie sessions on a Starlette app and bearer
tokens on a FastAPI app (so each is compared with the anchors of its framework), on SQLite and on Redis with
the local cache (`SESSIONWARD_LOCAL_CACHE=1`, healthy before timing). The JWT rows are the hot path (one token
sent again and again), as the anchors'.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from sessionward.asgi import RequireToken, Sessionward, get_session
from sessionward.passwords import Argon2idHasher
from sessionward.tokens import Claims, KeySet

from .asgi_bench import AsgiVariant
from .common import AUDIENCE, ISSUER, PASSWORD, USERNAME, _secret
from .sw_apps import _sw_signing_key, _sw_store_config


def _settings(workdir: Path, backend: str, cache: bool, *, tokens: bool) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "SESSIONWARD_DATABASE_URL": f"sqlite:///{workdir / 'sw_users.sqlite3'}",
        "SESSIONWARD_CSRF_KEY": _secret(workdir, "sw_csrf"),
        **_sw_store_config(workdir, backend, cache),
    }
    if tokens:
        settings.update(SESSIONWARD_REFRESH_KEY=_secret(workdir, "sw_refresh"), SESSIONWARD_ISSUER=ISSUER,
                        SESSIONWARD_AUDIENCE=AUDIENCE, SESSIONWARD_ACCESS_TTL=3600)
    return settings


def _adapter(app: Any, workdir: Path, backend: str, cache: bool, *, tokens: bool, alg: str = "HS256") -> None:
    keys = KeySet([_sw_signing_key(workdir, alg)]) if tokens else None
    # the hasher only matters for logins (measured by the WSGI part's login row with the real parameters)
    Sessionward(app, _settings(workdir, backend, cache, tokens=tokens), hasher=Argon2idHasher.insecure_for_tests(),
                token_keys=keys)


async def _ready(app: Any) -> Any:
    """The adapter's state, with a local cache healthy (subscribed, heartbeat answered, denylist loaded)."""
    st = app.state.sessionward
    wait = getattr(st.store, "wait_healthy", None)
    if wait is not None and not await wait(timeout=15.0):
        raise RuntimeError("the local cache did not become healthy (Redis pub/sub down?)")
    return st


async def _bench_user(st: Any) -> Any:
    return await st.users.get_by_username(USERNAME) or await st.users.create(USERNAME, PASSWORD)


# -- cookie sessions (Starlette) ------------------------------------------------------------------------

async def _session_protected(request: Request) -> Response:
    session = await get_session(request)
    if session is None:
        return PlainTextResponse("sign in", status_code=401)
    return PlainTextResponse(session.user_id)


def cookie_app(backend: str, cache: bool = False) -> Any:
    def make(workdir: Path) -> Any:
        app = Starlette(routes=[Route("/protected", _session_protected)])
        _adapter(app, workdir, backend, cache, tokens=False)
        return app

    return make


async def cookie_setup(app: Any, workdir: Path) -> dict[str, str]:
    st = await _ready(app)
    user = await _bench_user(st)
    session = await st.sessions.login(user.id, user_agent="bench", ip="127.0.0.1")
    return {"Cookie": f"{st.cookie.name}={session.secret}"}


# -- bearer tokens (FastAPI) ----------------------------------------------------------------------------

def token_app(backend: str, cache: bool = False) -> Any:
    def make(workdir: Path) -> Any:
        app = FastAPI()
        _adapter(app, workdir, backend, cache, tokens=True)

        @app.get("/protected")
        async def protected(claims: Annotated[Claims, RequireToken()]) -> PlainTextResponse:
            return PlainTextResponse(claims.sub)

        return app

    return make


async def token_setup(app: Any, workdir: Path) -> dict[str, str]:
    st = await _ready(app)
    user = await _bench_user(st)
    pair = await st.token_service().issue(user.id, fresh=True)
    return {"Authorization": f"Bearer {pair.access_token}"}


SW_VARIANTS = [
    AsgiVariant("sw_asgi_cookie_sqlite", "sw ASGI cookie session, SQLite", "cookie", "starlette", "sessionward",
                cookie_app("sqlite"), cookie_setup),
    AsgiVariant("sw_asgi_cookie_redis_cache", "sw ASGI cookie session, Redis + local cache", "cookie", "starlette",
                "sessionward", cookie_app("redis", cache=True), cookie_setup, needs_redis=True),
    AsgiVariant("sw_asgi_jwt_sqlite", "sw ASGI JWT HS256 (RequireToken), SQLite", "jwt", "fastapi", "sessionward",
                token_app("sqlite"), token_setup),
    AsgiVariant("sw_asgi_jwt_redis_cache", "sw ASGI JWT HS256 (RequireToken), Redis + local cache", "jwt", "fastapi",
                "sessionward", token_app("redis", cache=True), token_setup, needs_redis=True),
]
