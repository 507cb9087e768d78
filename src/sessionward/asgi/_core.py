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
from types import SimpleNamespace
from typing import Any

from starlette.concurrency import run_in_threadpool

from ..auth import Authenticator
from ..clock import Clock, SystemClock
from ..config import CookiePolicy, SessionPolicy, ThrottlePolicy
from ..csrf import CSRFProtector
from ..db import make_engine
from ..exceptions import ConfigError
from ..passwords import Argon2idHasher, PasswordPolicy
from ..sessions import SessionManager
from ..stores import SessionStore, open_store, store_options
from ..throttle import LoginThrottle
from ..tokens import KeySource
from ..users import RecentUsers, UserStore
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
    """Everything from `SESSIONWARD_*` settings in `config`, validated now. Raises `ConfigError` naming a bad one."""
    from ..flask import extension as parse  # the settings parsers (Flask-free functions over `.config`)
    from ..flask.jwt_config import build_token_service

    holder = SimpleNamespace(config=config)
    clock = clock or SystemClock()
    if store is None:
        url = config.get("SESSIONWARD_STORE_URL")
        if not url:
            raise ConfigError("SESSIONWARD_STORE_URL", "is required (sqlite:///..., postgresql://..., redis://...)")
        store = open_store(url, **store_options(url, config))
    policy = SessionPolicy(
        idle_timeout=parse._number(holder, "SESSIONWARD_SESSION_IDLE_TIMEOUT", 30 * 60),  # type: ignore[arg-type]
        absolute_lifetime=parse._number(holder, "SESSIONWARD_SESSION_ABSOLUTE_LIFETIME", 12 * 3600),  # type: ignore[arg-type]
        touch_interval=parse._number(holder, "SESSIONWARD_SESSION_TOUCH_INTERVAL", 60),  # type: ignore[arg-type]
        reauth_window=parse._number(holder, "SESSIONWARD_SESSION_REAUTH_WINDOW", 10 * 60),  # type: ignore[arg-type]
    )
    cookie = CookiePolicy(
        name=config.get("SESSIONWARD_COOKIE_NAME", "__Host-session"),
        samesite=config.get("SESSIONWARD_COOKIE_SAMESITE", "Lax"),
    )
    hasher = hasher or Argon2idHasher(gate=parse._hash_gate(holder))  # type: ignore[arg-type]
    if users is None:
        db_url = config.get("SESSIONWARD_DATABASE_URL")
        if not db_url:
            raise ConfigError("SESSIONWARD_DATABASE_URL", "is required (sqlite:///... or postgresql://...)")
        users = UserStore(make_engine(db_url), hasher=hasher, policy=PasswordPolicy(), clock=clock)
    throttle = LoginThrottle(
        store,
        ThrottlePolicy(
            account_free=int(parse._number(holder, "SESSIONWARD_THROTTLE_ACCOUNT_FREE", 5)),  # type: ignore[arg-type]
            address_free=int(parse._number(holder, "SESSIONWARD_THROTTLE_ADDRESS_FREE", 20)),  # type: ignore[arg-type]
            max_backoff=parse._number(holder, "SESSIONWARD_THROTTLE_MAX_BACKOFF", 15 * 60),  # type: ignore[arg-type]
        ),
        clock,
    )
    tokens = None
    if token_keys is not None or config.get("SESSIONWARD_REFRESH_KEY"):
        tokens = Offloaded(build_token_service(config, store=store, clock=clock, keys=token_keys))
    elif config.get("SESSIONWARD_KEK"):
        raise ConfigError("SESSIONWARD_REFRESH_KEY", "is required for tokens (32+ random bytes)")
    return SessionwardState(
        clock=clock,
        store=Offloaded(store),
        users=Offloaded(users),
        recent_users=Offloaded(RecentUsers(users, clock=clock)),
        sessions=Offloaded(SessionManager(store=store, policy=policy, clock=clock)),
        authenticator=Offloaded(Authenticator(users=users, hasher=hasher, throttle=throttle, clock=clock)),
        csrf=CSRFProtector(parse._key(holder, "SESSIONWARD_CSRF_KEY"),  # type: ignore[arg-type]
                           trusted_origins=config.get("SESSIONWARD_TRUSTED_ORIGINS", ())),
        cookie=cookie,
        tokens=tokens,
        purge_interval=parse._number(holder, "SESSIONWARD_PURGE_INTERVAL", 600),  # type: ignore[arg-type]
    )
