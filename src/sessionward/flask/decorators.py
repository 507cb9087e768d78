"""`login_required`: the view runs only for a signed-in user; others go to the login page (HTML) or get 401 (API)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import quote

from flask import redirect, request

from ..exceptions import AuthenticationError
from .context import get_user
from .errors import wants_json

F = TypeVar("F", bound=Callable[..., Any])


def login_required(view: F) -> F:
    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if get_user() is None:
            if wants_json():
                raise AuthenticationError("Sign in first.")
            target = request.full_path if request.query_string else request.path
            return redirect(f"/login?next={quote(target, safe='/')}", code=303)
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
