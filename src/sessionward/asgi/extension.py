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

from ..clock import Clock, SystemClock
from ..csrf import CSRFProtector
from ..exceptions import ConfigError, SessionwardError
from ..passwords import Argon2idHasher
from ..settings import Settings
from .errors import SignInFirst, exception_response
from .middleware import DEFAULT_MAX_BODY, SessionwardMiddleware
from .state import SessionwardState

__all__ = ["Sessionward"]


async def _handle(request: Request, exc: Exception) -> Response:
    return exception_response(request, exc)


class Sessionward:
    """`Sessionward(app, settings)`: `settings` is any mapping of `SESSIONWARD_*` names (a dict, `os.environ`),
    parsed and validated now (`Settings.from_mapping`: a wrong or unknown one raises `ConfigError` naming its
    full key). The stores open when the app's lifespan starts (or at the first request) and close when it ends.
    Options as on Flask's `init_app`, in their async flavour (`store`: an `AsyncSessionStore`, `users`: an
    `AsyncUserStore`, `hasher`: an `Argon2idHasher` or `AsyncArgon2idHasher`, `token_keys`: a `KeySet` or an
    async key source) plus `max_body`, the request body limit in bytes (413 past it; None for none)."""

    def __init__(
        self,
        app: Starlette,
        settings: Mapping[str, Any],
        *,
        clock: Clock | None = None,
        store: Any = None,
        users: Any = None,
        hasher: Argon2idHasher | Any = None,
        token_keys: Any = None,
        max_body: int | None = DEFAULT_MAX_BODY,
    ) -> None:
        settings_ = Settings.from_mapping(settings)
        if settings_.csrf_key is None:
            raise ConfigError("SESSIONWARD_CSRF_KEY", "is required (32+ random bytes); sessionward never falls back "
                              "to SECRET_KEY")
        if store is None and not settings_.store.url:
            raise ConfigError("SESSIONWARD_STORE_URL", "is required (sqlite:///..., postgresql://..., redis://...)")
        if (users is None or settings_.tokens.enabled) and not settings_.database_url:
            raise ConfigError("SESSIONWARD_DATABASE_URL", "is required (sqlite:///... or postgresql://...)")
        if settings_.tokens.enabled and token_keys is None and settings_.tokens.kek is None:
            raise ConfigError("SESSIONWARD_KEK", "is required (32+ random bytes); sessionward never falls back to "
                              "SECRET_KEY")
        given = {"store": store, "users": users, "hasher": hasher, "token_keys": token_keys}
        self.state = SessionwardState(
            settings=settings_,
            clock=clock or SystemClock(),
            csrf=CSRFProtector(settings_.csrf_key, trusted_origins=settings_.trusted_origins),
            cookie=settings_.cookie,
            tokens_enabled=token_keys is not None or settings_.tokens.enabled,
            given={k: v for k, v in given.items() if v is not None},
        )
        app.state.sessionward = self.state
        app.add_middleware(SessionwardMiddleware, state=self.state, max_body=max_body)
        for exc_class in (SessionwardError, HTTPException, SignInFirst):
            app.add_exception_handler(exc_class, _handle)
        with contextlib.suppress(ImportError):
            from fastapi.exceptions import RequestValidationError

            app.add_exception_handler(RequestValidationError, _handle)
        app.router.lifespan_context = _lifespan(app.router.lifespan_context, self.state)
        if settings_.dbsc is not None:
            from .dbsc import add_dbsc_routes

            add_dbsc_routes(app, settings_.dbsc.policy)


def _lifespan(inner: Callable[[Any], Any], state: SessionwardState) -> Callable[[Any], Any]:
    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[Any]:
        await state.open()
        try:
            async with inner(app) as value:
                yield value
        finally:
            await state.aclose()

    return lifespan
