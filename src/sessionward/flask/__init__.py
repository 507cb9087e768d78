"""The thin Flask extension over sessionward's core. Needs the `flask` extra (`pip install 'sessionward[flask]'`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..extras import require

require("flask", "flask")  # a clear error naming the extra, before anything imports Flask

from werkzeug.local import LocalProxy  # noqa: E402

from ..web import RequestState  # noqa: E402
from .context import request_state  # noqa: E402
from .decorators import login_required  # noqa: E402
from .extension import (  # noqa: E402
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
from .jwt import (  # noqa: E402
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
    "RequestState",
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
    "request_state",
    "set_access_cookies",
    "state",
    "token_service",
    "unset_access_cookies",
    "verify_jwt_in_request",
    "verify_login_csrf",
]
