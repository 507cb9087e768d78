"""FastAPI dependencies for the cookie session: `CurrentUser`, `OptionalUser`, `CurrentSession`,
`login_required`. A browser without a session is sent to the login page (303 with `?next=`), an API client gets
401 with the bearer challenge, as on Flask."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import Depends
from starlette.requests import Request

from ..exceptions import AuthenticationError
from ..sessions import Session
from ..users import User
from .context import get_session, get_user
from .errors import SignInFirst, wants_json

__all__ = ["CurrentSession", "CurrentUser", "OptionalSession", "OptionalUser", "login_required", "require_user"]

LOGIN_URL = "/login"


def _refuse(request: Request) -> Exception:
    if wants_json(request):
        return AuthenticationError("Sign in first.")
    query = request.scope.get("query_string", b"").decode("latin-1")
    target = f"{request.url.path}?{query}" if query else request.url.path
    return SignInFirst(f"{LOGIN_URL}?next={quote(target, safe='/')}")


async def require_user(request: Request) -> User:
    """The signed-in user. Raises `SignInFirst` (browser: 303 to the login page) or `AuthenticationError` (401)."""
    user = await get_user(request)
    if user is None:
        raise _refuse(request)
    return user


async def require_session(request: Request) -> Session:
    """The live cookie session of a signed-in user (refused like `require_user` otherwise)."""
    await require_user(request)
    session = await get_session(request)
    if session is None:
        raise _refuse(request)
    return session


CurrentUser = Annotated[User, Depends(require_user)]
OptionalUser = Annotated[User | None, Depends(get_user)]
CurrentSession = Annotated[Session, Depends(require_session)]
OptionalSession = Annotated[Session | None, Depends(get_session)]

#: `@app.get(..., dependencies=[login_required])`
login_required = Depends(require_user)
