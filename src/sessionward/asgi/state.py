"""What the adapter built at start-up (`SessionwardState`, one per app) and what it knows about one request
(`RequestContext`, one per request, kept in the ASGI scope)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

from ..clock import Clock
from ..config import CookiePolicy
from ..csrf import CSRFProtector
from ..exceptions import ConfigError
from ..sessions import Session
from ..tokens import Claims
from ..users import User

__all__ = ["FIRST_PURGE_DELAY", "RequestContext", "SessionwardState"]

FIRST_PURGE_DELAY = 60.0  #: seconds after start-up before the first purge of expired records
log = logging.getLogger("sessionward.asgi")


@dataclass(eq=False)
class SessionwardState:
    """The core objects of one app (`app.state.sessionward`). The I/O-touching ones have the async API:
    `store`, `users`, `recent_users`, `sessions`, `authenticator`, `tokens` (None when tokens are not configured)."""

    clock: Clock
    store: Any
    users: Any
    recent_users: Any
    sessions: Any
    authenticator: Any
    csrf: CSRFProtector
    cookie: CookiePolicy
    tokens: Any = None
    purge_interval: float = 600.0
    _next_purge: float = field(init=False)
    _purging: asyncio.Task[None] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self._next_purge = self.clock.now() + FIRST_PURGE_DELAY  # not during start-up

    def token_service(self) -> Any:
        """The token service. Raises `ConfigError` if tokens were not configured."""
        if self.tokens is None:
            raise ConfigError("SESSIONWARD_REFRESH_KEY", "tokens are not configured for this app")
        return self.tokens

    def maybe_purge(self) -> None:
        """Delete expired records now and then (at most once per `purge_interval`), in a background task so that
        no request waits for it. Redis expires keys by itself; SQL needs this."""
        now = self.clock.now()
        if now < self._next_purge or (self._purging is not None and not self._purging.done()):
            return
        self._next_purge = now + self.purge_interval
        self._purging = asyncio.get_running_loop().create_task(self._purge(now))

    async def _purge(self, now: float) -> None:
        try:
            await self.store.purge_expired(now=now)
        except Exception:  # a failed purge is retried at the next interval; never fatal
            log.warning("purge of expired sessions failed", exc_info=True)

    async def aclose(self) -> None:
        """Close the stores (lifespan shutdown)."""
        if self._purging is not None:
            self._purging.cancel()
        for closable in (self.store,):
            with contextlib.suppress(Exception):
                await closable.close()


class _Unset:
    pass


UNSET: Any = _Unset()


@dataclass(eq=False, slots=True)
class RequestContext:
    """Per-request state, typed (`scope["sessionward"]`): what was loaded, and what the response must send."""

    state: SessionwardState
    session: Session | None | _Unset = UNSET  #: loaded once, when first asked
    user: User | None | _Unset = UNSET
    new_cookie: str | None = None  #: a session secret to send (login, rotation)
    logout: bool = False
    dead_cookie: bool = False  #: the browser sent a session cookie that is no longer alive
    login_nonce: str | None = None
    new_login_nonce: str | None = None
    authenticated: bool = False  #: the answer is for one user: Cache-Control: no-store
    jwt_claims: Claims | None = None
    jwt_results: dict[str, Claims | Exception] = field(default_factory=dict)
