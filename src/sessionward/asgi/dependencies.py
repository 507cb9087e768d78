"""FastAPI dependencies for the cookie session: `CurrentUser`, `OptionalUser`, `CurrentSession`,
`login_required`; and `requires_login` for plain Starlette endpoints. A browser without a session is sent to the
login page (303 with `?next=`), an API client gets 401 with the bearer challenge, as on Flask. On a WebSocket
route the same dependencies read the handshake's session (the middleware has already refused a cross-site
handshake that carries cookies); without a signed-in user the handshake is closed with 1008 (HTTP 403)."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar
from urllib.parse import quote

from fastapi import Depends
from starlette import status
from starlette.exceptions import WebSocketException
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response

from ..exceptions import AuthenticationError
from ..sessions import Session
from ..users import User
from .context import get_session, get_user
from .errors import SignInFirst, wants_json

__all__ = [
    "CurrentSession", "CurrentUser", "OptionalSession", "OptionalUser", "login_required", "require_session",
    "require_user", "requires_login",
]

LOGIN_URL = "/login"



def _refuse(conn: HTTPConnection) -> Exception:
    if conn.scope["type"] == "websocket":
        return WebSocketException(status.WS_1008_POLICY_VIOLATION, "sign in first")
    if wants_json(conn):
        return AuthenticationError("Sign in first.")
    query = conn.scope.get("query_string", b"").decode("latin-1")
    target = f"{conn.url.path}?{query}" if query else conn.url.path
    return SignInFirst(f"{LOGIN_URL}?next={quote(target, safe='/')}")


async def require_user(conn: HTTPConnection) -> User:
    """The signed-in user. Raises `SignInFirst` (browser: 303 to the login page), `AuthenticationError` (401) or,
    on a WebSocket, `WebSocketException` (1008)."""
    user = await get_user(conn)
    if user is None:
        raise _refuse(conn)
    return user


async def require_session(conn: HTTPConnection) -> Session:
    """The live cookie session of a signed-in user (refused like `require_user` otherwise)."""
    await require_user(conn)
    session = await get_session(conn)
    if session is None:
        raise _refuse(conn)
    return session


E = TypeVar("E", bound=Callable[[Request], Awaitable[Response]])


def requires_login(endpoint: E) -> E:
    """Decorator for a plain Starlette endpoint (`async def endpoint(request)`): it runs only for a signed-in
    user, refused as `require_user` refuses (the middleware answers the refusal)."""

    @functools.wraps(endpoint)
    async def wrapper(request: Request) -> Response:
        await require_user(request)
        return await endpoint(request)

    return wrapper  # type: ignore[return-value]


CurrentUser = Annotated[User, Depends(require_user)]
OptionalUser = Annotated[User | None, Depends(get_user)]
CurrentSession = Annotated[Session, Depends(require_session)]
OptionalSession = Annotated[Session | None, Depends(get_session)]

#: `@app.get(..., dependencies=[login_required])`
login_required = Depends(require_user)
