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

if TYPE_CHECKING:
    from ..sessions import Session
    from ..users import User

current_user: "User | None" = LocalProxy(get_user)  # type: ignore[assignment]
current_session: "Session | None" = LocalProxy(get_session)  # type: ignore[assignment]

__all__ = [
    "Sessionward",
    "SessionwardState",
    "csrf_exempt",
    "csrf_token",
    "current_session",
    "current_user",
    "get_session",
    "get_user",
    "login_required",
    "login_user",
    "logout_user",
    "replace_session",
    "state",
    "verify_login_csrf",
]
