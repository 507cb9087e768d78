"""The thin Flask extension over sessionward's core."""

from __future__ import annotations

from typing import TYPE_CHECKING

from werkzeug.local import LocalProxy

from .decorators import login_required
from .extension import (
    Sessionward,
    SessionwardState,
    csrf_exempt,
    csrf_token,
    get_session,
    get_user,
    login_user,
    logout_user,
    replace_session,
    state,
    verify_login_csrf,
)
from .jwt import (
    get_jwt,
    get_jwt_claims,
    get_jwt_identity,
    jwt_required,
    set_access_cookies,
    token_service,
    unset_access_cookies,
    verify_jwt_in_request,
)

if TYPE_CHECKING:
    from ..sessions import Session
    from ..users import User

current_user: User | None = LocalProxy(get_user)  # type: ignore[assignment]
current_session: Session | None = LocalProxy(get_session)  # type: ignore[assignment]

__all__ = [
    "Sessionward",
    "SessionwardState",
    "csrf_exempt",
    "csrf_token",
    "current_session",
    "current_user",
    "get_jwt",
    "get_jwt_claims",
    "get_jwt_identity",
    "get_session",
    "get_user",
    "jwt_required",
    "login_required",
    "login_user",
    "logout_user",
    "replace_session",
    "set_access_cookies",
    "state",
    "token_service",
    "unset_access_cookies",
    "verify_jwt_in_request",
    "verify_login_csrf",
]
