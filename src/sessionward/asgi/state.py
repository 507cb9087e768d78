"""What the adapter builds for one app (`SessionwardState`, in `app.state.sessionward`): the validated settings
at once, the async core objects when the app's event loop starts (`open`), closed when it ends (`aclose`)."""

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
from ..settings import Settings

__all__ = ["FIRST_PURGE_DELAY", "SessionwardState"]

FIRST_PURGE_DELAY = 60.0  #: seconds after start-up before the first purge of expired records
log = logging.getLogger("sessionward.asgi")


@dataclass(eq=False)
class SessionwardState:
    """The app's sessionward objects. `store`, `users`, `recent_users`, `sessions`, `authenticator` and `tokens`
    (None when tokens are not configured) are the async classes of `sessionward.aio`, set by `open()`."""

    settings: Settings
    clock: Clock
    csrf: CSRFProtector
    cookie: CookiePolicy
    tokens_enabled: bool
    given: dict[str, Any] = field(default_factory=dict)  #: objects passed in instead of built (tests, benchmarks)
    store: Any = None
    users: Any = None
    recent_users: Any = None
    sessions: Any = None
    authenticator: Any = None
    tokens: Any = None
    dbsc: Any = None  #: `AsyncDeviceBinding` when `SESSIONWARD_DBSC` is on
    dpop: Any = None  #: the `DPoPVerifier` (RFC 9449) under `settings.dpop`, set in `__post_init__`
    engines: list[Any] = field(default_factory=list)  #: database engines `open()` made, disposed by `aclose()`
    _opened: bool = field(default=False, init=False)
    _opening: asyncio.Lock | None = field(default=None, init=False)
    _next_purge: float = field(init=False)
    _purging: asyncio.Task[None] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.dpop = self.settings.dpop.verifier()
        self._next_purge = self.clock.now() + FIRST_PURGE_DELAY  # not during start-up

    @property
    def purge_interval(self) -> float:
        return self.settings.purge_interval

    async def open(self) -> None:
        """Open the stores and build the services, once (later calls return at once). Raises `ConfigError`,
        `StoreUnavailable` (retried at the next call)."""
        if self._opened:
            return
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if not self._opened:
                from ._core import open_core

                await open_core(self)
                self._opened = True

    def token_service(self) -> Any:
        """The token service. Raises `ConfigError` if tokens were not configured."""
        if self.tokens is None:
            raise ConfigError("SESSIONWARD_REFRESH_KEY", "tokens are not configured for this app")
        return self.tokens

    def maybe_purge(self) -> None:
        """Delete expired records now and then (at most once per `purge_interval`), in a background task so that
        no request waits for it. Redis expires keys by itself; SQL needs this."""
        now = self.clock.now()
        if not self._opened or now < self._next_purge or (self._purging is not None and not self._purging.done()):
            return
        self._next_purge = now + self.purge_interval
        self._purging = asyncio.get_running_loop().create_task(self._purge(now))

    async def _purge(self, now: float) -> None:
        try:
            await self.store.purge_expired(now=now)
        except Exception:  # a failed purge is retried at the next interval; never fatal
            log.warning("purge of expired sessions failed", exc_info=True)

    async def aclose(self) -> None:
        """Close what `open()` opened (lifespan shutdown); objects passed in belong to the caller."""
        if self._purging is not None:
            self._purging.cancel()
        if not self._opened:
            return
        self._opened = False
        for name in ("store", "users"):
            if name not in self.given and getattr(self, name) is not None:
                with contextlib.suppress(Exception):
                    await getattr(self, name).close()
        for engine in self.engines:
            with contextlib.suppress(Exception):
                await engine.dispose()
        self.engines.clear()
