"""The ASGI anchors: bare Starlette and bare FastAPI, Starlette's `SessionMiddleware` (a signed cookie),
starsessions on Redis, and fastapi-users (bearer JWT, and bearer tokens with its Redis strategy).

Each app has `/protected` (needs the credential, answers the user id as text); `setup(app)` runs inside the
app's lifespan in the parent and returns the headers of an authenticated client. Secrets come from the workdir,
so gunicorn's workers (`bench.asgi_serve`) serve exactly what the parent measured; fastapi-users keeps its one
user in memory (no database round trip: the anchor's auth layer alone, which favours it).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from .common import REDIS_PREFIX, REDIS_URL, _secret

HTTP_OK = 200
#: fastapi-users' one user (the same id in every worker)
FU_USER_ID = uuid.UUID("00000000-0000-4000-8000-000000000001")


async def request(app: Any, method: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, list[str]]:
    """One in-process request: (status, Set-Cookie values)."""
    scope = make_scope(method, path, headers or {})
    out: dict[str, Any] = {}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            out["status"] = message["status"]
            out["cookies"] = [v.decode("latin-1") for k, v in message.get("headers", []) if k.lower() == b"set-cookie"]

    await app(scope, receive, send)
    return int(out["status"]), list(out["cookies"])


def make_scope(method: str, path: str, headers: dict[str, str]) -> dict[str, Any]:
    """An HTTPS request scope as uvicorn builds it (host `localhost`)."""
    raw = [(b"host", b"localhost"), *((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items())]
    return {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1", "method": method,
        "scheme": "https", "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"",
        "headers": raw, "client": ("127.0.0.1", 50000), "server": ("localhost", 443), "state": {},
    }


def cookie_header(set_cookie: list[str]) -> dict[str, str]:
    return {"Cookie": "; ".join(c.split(";", 1)[0] for c in set_cookie)}


# -- bare ----------------------------------------------------------------------------------------------

async def _protected_text(_request: Request) -> Response:
    return PlainTextResponse("u1")


def bare_starlette(workdir: Path) -> Any:
    return Starlette(routes=[Route("/protected", _protected_text)])


def bare_fastapi(workdir: Path) -> Any:
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/protected")
    async def protected() -> PlainTextResponse:
        return PlainTextResponse("u1")

    return app


async def no_setup(app: Any, workdir: Path) -> dict[str, str]:
    return {}


# -- Starlette's SessionMiddleware (signed cookie) and starsessions on Redis ----------------------------

async def _login(request: Request) -> Response:
    if "session_handler" in request.scope:  # starsessions loads on demand
        from starsessions import load_session

        await load_session(request)
    request.session["user_id"] = "u1"
    return PlainTextResponse("ok")


async def _session_protected(request: Request) -> Response:
    if "session_handler" in request.scope:
        from starsessions import load_session

        await load_session(request)
    user_id = request.session.get("user_id")
    if user_id is None:
        return PlainTextResponse("sign in", status_code=401)
    return PlainTextResponse(user_id)


_SESSION_ROUTES = [Route("/login", _login, methods=["POST"]), Route("/protected", _session_protected)]


def starlette_cookie(workdir: Path) -> Any:
    from starlette.middleware.sessions import SessionMiddleware

    secret = _secret(workdir, "starlette_secret").hex()
    return Starlette(routes=_SESSION_ROUTES, middleware=[Middleware(SessionMiddleware, secret_key=secret,
                                                                    https_only=True)])


def starsessions_redis(workdir: Path) -> Any:
    import redis.asyncio
    from starsessions import SessionMiddleware
    from starsessions.stores.redis import RedisStore

    store = RedisStore(connection=redis.asyncio.Redis.from_url(REDIS_URL), prefix=REDIS_PREFIX + "starsessions:")
    return Starlette(routes=_SESSION_ROUTES, middleware=[Middleware(SessionMiddleware, store=store, lifetime=3600,
                                                                    cookie_https_only=True)])


async def login_cookie(app: Any, workdir: Path) -> dict[str, str]:
    status, cookies = await request(app, "POST", "/login")
    assert status == HTTP_OK and cookies, (status, cookies)
    return cookie_header(cookies)


# -- fastapi-users: bearer JWT, and bearer tokens on Redis ---------------------------------------------

@dataclass
class FUUser:
    id: uuid.UUID
    email: str
    hashed_password: str = ""
    is_active: bool = True
    is_superuser: bool = False
    is_verified: bool = True


def fastapi_users_app(workdir: Path, strategy: str) -> Any:
    from fastapi import Depends, FastAPI
    from fastapi_users import BaseUserManager, FastAPIUsers, UUIDIDMixin
    from fastapi_users.authentication import AuthenticationBackend, BearerTransport, JWTStrategy, RedisStrategy
    from fastapi_users.db import BaseUserDatabase

    secret = _secret(workdir, "fastapi_users_secret").hex()
    user = FUUser(FU_USER_ID, "bench@example.com")

    class MemoryUsers(BaseUserDatabase[FUUser, uuid.UUID]):  # type: ignore[misc]
        async def get(self, id: uuid.UUID) -> FUUser | None:
            return user if id == user.id else None

    class Manager(UUIDIDMixin, BaseUserManager[FUUser, uuid.UUID]):  # type: ignore[misc]
        reset_password_token_secret = verification_token_secret = secret

    manager = Manager(MemoryUsers())

    async def get_manager() -> Any:
        yield manager

    if strategy == "jwt":
        def get_strategy() -> Any:
            return JWTStrategy(secret=secret, lifetime_seconds=7200)
    else:
        import redis.asyncio

        client = redis.asyncio.Redis.from_url(REDIS_URL, decode_responses=True)

        def get_strategy() -> Any:
            return RedisStrategy(client, lifetime_seconds=7200, key_prefix=REDIS_PREFIX + "fu:")

    backend = AuthenticationBackend(name=strategy, transport=BearerTransport(tokenUrl="login"),
                                    get_strategy=get_strategy)
    users = FastAPIUsers[FUUser, uuid.UUID](get_manager, [backend])
    current_user = users.current_user(active=True)
    app = FastAPI()
    app.state.bench_token = lambda: get_strategy().write_token(user)
    who_depends = Depends(current_user)

    @app.get("/protected")
    async def protected(who: FUUser = who_depends) -> PlainTextResponse:
        return PlainTextResponse(str(who.id))

    return app


async def fastapi_users_token(app: Any, workdir: Path) -> dict[str, str]:
    token = await app.state.bench_token()
    return {"Authorization": f"Bearer {token}"}
