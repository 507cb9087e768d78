"""A small FastAPI app on the adapter, for the adapter's own tests (fixtures are in conftest.py).

A module of its own, not conftest: `from conftest import` picks whichever conftest was imported last."""

from __future__ import annotations

import re
import secrets
from typing import Annotated, Any

from fastapi import FastAPI, Request
from starlette.testclient import TestClient

from sessionward.asgi import (
    CurrentSession,
    CurrentUser,
    OptionalUser,
    RequireToken,
    Sessionward,
    csrf_exempt,
    csrf_token,
    login_required,
    login_user,
    logout_user,
    state,
    verify_login_csrf,
)
from sessionward.clock import ManualClock
from sessionward.passwords import Argon2idHasher
from sessionward.tokens import Claims

PASSWORD = "correct horse battery staple"
BASE = "https://app.test"


def settings(tmp_path: Any, **extra: Any) -> dict[str, Any]:
    db = f"sqlite:///{tmp_path / 'sw.db'}"
    return {
        "SESSIONWARD_STORE_URL": db,
        "SESSIONWARD_DATABASE_URL": db,
        "SESSIONWARD_CSRF_KEY": secrets.token_bytes(32),
        "SESSIONWARD_REFRESH_KEY": secrets.token_bytes(32),
        "SESSIONWARD_KEK": secrets.token_bytes(32),
        **extra,
    }


def make_app(tmp_path: Any, clock: ManualClock | None = None, *, max_body: int = 1024, **extra: Any) -> FastAPI:
    app = FastAPI()
    Sessionward(app, settings(tmp_path, **extra), clock=clock or ManualClock(), max_body=max_body,
                hasher=Argon2idHasher.insecure_for_tests())

    @app.get("/login")
    async def login_form(request: Request) -> dict[str, str]:
        return {"csrf_token": await csrf_token(request)}

    @app.post("/login")
    @csrf_exempt
    async def login(request: Request) -> dict[str, str]:
        form = await request.form()
        verify_login_csrf(request)
        user = await state(request).authenticator.authenticate(
            str(form["username"]), str(form["password"]), ip="127.0.0.1")
        await login_user(request, user)
        return {"user": user.username}

    @app.get("/me")
    async def me(user: CurrentUser) -> dict[str, str]:
        return {"user": user.username}

    @app.get("/maybe")
    async def maybe(user: OptionalUser) -> dict[str, Any]:
        return {"user": user.username if user else None}

    @app.get("/token")
    async def token(request: Request, session: CurrentSession) -> dict[str, str]:
        return {"csrf_token": await csrf_token(request)}

    @app.post("/change", dependencies=[login_required])
    async def change() -> dict[str, bool]:
        return {"changed": True}

    @app.post("/public")
    async def public() -> dict[str, bool]:
        return {"ok": True}

    @app.post("/logout")
    async def logout(request: Request) -> dict[str, bool]:
        await logout_user(request)
        return {"ok": True}

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        return {"size": len(await request.body())}

    @app.get("/api/items")
    async def items(claims: Annotated[Claims, RequireToken(scopes=["items:read"])]) -> dict[str, str]:
        return {"sub": claims.sub}

    @app.get("/api/me")
    async def api_me(claims: Annotated[Claims, RequireToken()], user: CurrentUser) -> dict[str, str]:
        return {"user": user.username, "jti": claims.jti}

    @app.get("/api/me-first")  # the user declared before the token: the order must not matter
    async def api_me_first(user: CurrentUser, claims: Annotated[Claims, RequireToken()]) -> dict[str, str]:
        return {"user": user.username, "sub": claims.sub}

    @app.post("/api/write")
    async def api_write(claims: Annotated[Claims, RequireToken(locations=["headers", "cookies"])]) -> dict[str, str]:
        return {"sub": claims.sub}

    @app.post("/api/admin")
    async def admin(claims: Annotated[Claims, RequireToken(fresh=True)]) -> dict[str, bool]:
        return {"fresh": claims.fresh}

    @app.get("/api/optional")
    async def optional(claims: Annotated[Claims | None, RequireToken(optional=True)]) -> dict[str, Any]:
        return {"sub": claims.sub if claims else None}

    return app


def client(app: FastAPI) -> TestClient:
    return TestClient(app, base_url=BASE, follow_redirects=False)


def add_user(c: TestClient, name: str = "alice", password: str = PASSWORD) -> Any:
    """A user, created through the app's own store on the app's event loop."""
    users = c.app.state.sessionward.users  # type: ignore[attr-defined]
    return c.portal.call(lambda: users.create(name, password))  # type: ignore[union-attr]


def call(c: TestClient, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Await `fn(*args, **kwargs)` on the app's event loop."""
    return c.portal.call(lambda: fn(*args, **kwargs))  # type: ignore[union-attr]


def login(c: TestClient, name: str = "alice", password: str = PASSWORD) -> Any:
    token = c.get("/login").json()["csrf_token"]
    return c.post("/login", data={"username": name, "password": password, "csrf_token": token})


def set_cookie_attrs(response: Any, name: str) -> dict[str, str]:
    """The attributes of the Set-Cookie header for `name` (lower-cased names; flags map to "")."""
    for header in response.headers.get_list("set-cookie"):
        if header.startswith(f"{name}="):
            parts = [p.strip() for p in header.split(";")]
            attrs = {"value": parts[0].split("=", 1)[1]}
            for part in parts[1:]:
                key, _, value = part.partition("=")
                attrs[key.lower()] = value
            return attrs
    raise AssertionError(f"no Set-Cookie for {name}: {response.headers.get_list('set-cookie')}")


def form_token(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no csrf_token in the page"
    return match.group(1)
