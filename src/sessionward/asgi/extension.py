"""`Sessionward(app, settings)`: sessionward on a Starlette or FastAPI app.

It builds and validates everything from the `SESSIONWARD_*` settings once (a wrong one raises `ConfigError`
naming it), keeps the state in `app.state.sessionward`, adds `SessionwardMiddleware`, answers every error in the
one shape, and closes the stores when the app's lifespan ends.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from ..clock import Clock
from ..exceptions import SessionwardError
from ..passwords import Argon2idHasher
from ..stores import SessionStore
from ..tokens import KeySource
from ..users import UserStore
from ._core import build_state
from .errors import SignInFirst, exception_response
from .middleware import DEFAULT_MAX_BODY, SessionwardMiddleware
from .state import SessionwardState

__all__ = ["Sessionward"]


async def _handle(request: Request, exc: Exception) -> Response:
    return exception_response(request, exc)


class Sessionward:
    """`Sessionward(app, settings)`: `settings` is any mapping of `SESSIONWARD_*` names (a dict, `os.environ`).
    Options as on Flask's `init_app` (`clock`, `store`, `users`, `hasher`, `token_keys`) plus `max_body`,
    the request body limit in bytes (413 past it; None for none)."""

    def __init__(
        self,
        app: Starlette,
        settings: Mapping[str, Any],
        *,
        clock: Clock | None = None,
        store: SessionStore | None = None,
        users: UserStore | None = None,
        hasher: Argon2idHasher | None = None,
        token_keys: KeySource | None = None,
        max_body: int | None = DEFAULT_MAX_BODY,
    ) -> None:
        self.state: SessionwardState = build_state(
            settings, clock=clock, store=store, users=users, hasher=hasher, token_keys=token_keys
        )
        app.state.sessionward = self.state
        app.add_middleware(SessionwardMiddleware, state=self.state, max_body=max_body)
        for exc_class in (SessionwardError, HTTPException, SignInFirst):
            app.add_exception_handler(exc_class, _handle)
        with contextlib.suppress(ImportError):
            from fastapi.exceptions import RequestValidationError

            app.add_exception_handler(RequestValidationError, _handle)
        app.router.lifespan_context = _lifespan(app.router.lifespan_context, self.state)


def _lifespan(inner: Callable[[Any], Any], state: SessionwardState) -> Callable[[Any], Any]:
    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[Any]:
        try:
            async with inner(app) as value:
                yield value
        finally:
            await state.aclose()

    return lifespan
