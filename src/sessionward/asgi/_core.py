"""The core objects of one ASGI app, built once from a settings mapping (a wrong setting raises `ConfigError`
naming it, at start-up).

Every object the adapter awaits has the async API of `sessionward.aio` (`await sessions.load(...)`,
`await authenticator.authenticate(...)`, `await tokens.verify_access(...)`). Until the async core is merged
here, `Offloaded` gives the sync core that API by running each I/O-touching call in a worker thread (never on
the event loop); the adapter does not change when the async classes replace it.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from starlette.concurrency import run_in_threadpool

from ..clock import Clock
from ..passwords import Argon2idHasher
from ..settings import Settings
from ..stores import SessionStore
from ..tokens import KeySource
from ..users import UserStore
from ..web import build_state as build_core
from .state import SessionwardState

__all__ = ["Offloaded", "build_state"]

#: Methods that touch no I/O: called directly, as on the async classes.
_PURE = frozenset({"is_recent_auth", "require_recent_auth", "needs_rehash"})


class Offloaded:
    """`target` with every public method turned into a coroutine function that runs it in a worker thread.
    Attributes (`policy`, ...) and the pure methods in `_PURE` are passed through unchanged."""

    def __init__(self, target: Any) -> None:
        self.__dict__["_target"] = target

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if name.startswith("_") or name in _PURE or not callable(value) or isinstance(value, type):
            return value

        @functools.wraps(value)
        async def call(*args: Any, **kwargs: Any) -> Any:
            return await run_in_threadpool(value, *args, **kwargs)

        self.__dict__[name] = call
        return call

    @property
    def sync(self) -> Any:
        """The wrapped sync object (for tests and the CLI)."""
        return self._target


def build_state(
    config: Mapping[str, Any],
    *,
    clock: Clock | None = None,
    store: SessionStore | None = None,
    users: UserStore | None = None,
    hasher: Argon2idHasher | None = None,
    token_keys: KeySource | None = None,
) -> SessionwardState:
    """Everything from `SESSIONWARD_*` settings in `config` (`Settings.from_mapping`), validated now. Raises
    `ConfigError` naming the full key."""
    settings = Settings.from_mapping(config)
    core = build_core(settings, clock=clock, store=store, users=users, hasher=hasher, token_keys=token_keys)
    return SessionwardState(
        clock=core.clock,
        store=Offloaded(core.store),
        users=Offloaded(core.users),
        recent_users=Offloaded(core.recent_users),
        sessions=Offloaded(core.sessions),
        authenticator=Offloaded(core.authenticator),
        csrf=core.csrf,
        cookie=core.cookie,
        tokens=None if core.tokens is None else Offloaded(core.tokens),
        purge_interval=core.purge_interval,
        settings=settings,
    )
