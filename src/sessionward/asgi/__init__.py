"""The thin Starlette / FastAPI adapter over sessionward's core: `Sessionward(app, settings)`, the middleware,
FastAPI dependencies and the same calls as on Flask, awaited."""

from __future__ import annotations

from ..web import RequestState
from .context import (
    context,
    csrf_token,
    get_session,
    get_user,
    login_user,
    logout_user,
    replace_session,
    state,
    verify_login_csrf,
)
from .dependencies import (
    CurrentSession,
    CurrentUser,
    OptionalSession,
    OptionalUser,
    login_required,
    require_session,
    require_user,
    requires_login,
)
from .errors import error_response, wants_json
from .extension import Sessionward
from .middleware import SessionwardMiddleware, csrf_exempt
from .state import SessionwardState
from .tokens import (
    RequireToken,
    bearer_scheme,
    get_claims,
    set_access_cookies,
    unset_access_cookies,
    verify_token,
)

__all__ = [
    "CurrentSession",
    "CurrentUser",
    "OptionalSession",
    "OptionalUser",
    "RequestState",
    "RequireToken",
    "Sessionward",
    "SessionwardMiddleware",
    "SessionwardState",
    "bearer_scheme",
    "context",
    "csrf_exempt",
    "csrf_token",
    "error_response",
    "get_claims",
    "get_session",
    "get_user",
    "login_required",
    "login_user",
    "logout_user",
    "replace_session",
    "require_session",
    "require_user",
    "requires_login",
    "set_access_cookies",
    "state",
    "unset_access_cookies",
    "verify_login_csrf",
    "verify_token",
    "wants_json",
]
