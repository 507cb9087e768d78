"""What an adapter builds at start-up from `Settings`: the core objects of one app, typed.

`build_state(settings, ...)` is framework-free, so the Flask extension and any other synchronous adapter build
exactly the same objects; it raises `ConfigError` naming the full `SESSIONWARD_*` key.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..auth import Authenticator
from ..clock import Clock, SystemClock
from ..config import CookiePolicy
from ..csrf import CSRFProtector
from ..exceptions import ConfigError
from ..passwords import Argon2idHasher
from ..sessions import SessionManager
from ..settings import Settings
from ..stores import SessionStore
from ..throttle import LoginThrottle
from ..users import RecentUsers, UserStore

if TYPE_CHECKING:
    from ..device_binding import DeviceBinding
    from ..dpop import DPoPVerifier
    from ..tokens import KeySource, TokenService

__all__ = ["FIRST_PURGE_DELAY", "SessionwardState", "build_state"]

FIRST_PURGE_DELAY = 60.0  #: seconds after start-up before the first purge of expired records


@dataclass
class SessionwardState:
    """Everything built at start-up (Flask keeps it in `app.extensions["sessionward"]`). `tokens` is None when
    tokens are not configured (no `SESSIONWARD_REFRESH_KEY`)."""

    clock: Clock
    store: SessionStore
    users: UserStore
    sessions: SessionManager
    authenticator: Authenticator
    csrf: CSRFProtector
    cookie: CookiePolicy
    hasher: Argon2idHasher
    settings: Settings
    tokens: TokenService | None = None
    dbsc: DeviceBinding | None = None  #: device-bound sessions, when `SESSIONWARD_DBSC` is on
    dpop: DPoPVerifier | None = None  #: DPoP proofs (RFC 9449) under `settings.dpop`
    recent_users: RecentUsers = field(init=False)
    purge_interval: float = 600.0
    _next_purge: float = field(init=False)
    _purge_lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.recent_users = RecentUsers(self.users, clock=self.clock)
        self._next_purge = self.clock.now() + FIRST_PURGE_DELAY  # not during start-up

    def maybe_purge(self) -> None:
        """Delete expired records now and then (at most once per `purge_interval` per process), in a
        background thread so that no request waits for it. Redis expires keys by itself; SQL needs this."""
        now = self.clock.now()
        if now < self._next_purge or not self._purge_lock.acquire(blocking=False):
            return
        self._next_purge = now + self.purge_interval

        def run() -> None:
            try:
                self.store.purge_expired(now=self.clock.now())
            except Exception:  # a failed purge is retried at the next interval; never fatal
                logging.getLogger("sessionward.web").warning("purge of expired sessions failed", exc_info=True)
            finally:
                self._purge_lock.release()

        threading.Thread(target=run, name="sessionward-purge", daemon=True).start()


def build_state(
    settings: Settings,
    *,
    clock: Clock | None = None,
    store: SessionStore | None = None,
    users: UserStore | None = None,
    hasher: Argon2idHasher | None = None,
    token_keys: KeySource | None = None,
) -> SessionwardState:
    """The core objects of one app from `settings`; given objects are used instead of building them (tests,
    benchmarks). Tokens are built when `SESSIONWARD_REFRESH_KEY` is set or `token_keys` given. Raises
    `ConfigError` (full key), `StoreUnavailable`, `MissingExtra`."""
    from ..assembly import build_token_service, open_settings_store, open_user_store

    clock = clock or SystemClock()
    if settings.csrf_key is None:
        raise ConfigError("SESSIONWARD_CSRF_KEY", "is required (32+ random bytes); sessionward never falls back "
                          "to SECRET_KEY")
    csrf = CSRFProtector(settings.csrf_key, trusted_origins=settings.trusted_origins)
    if store is None:
        store = open_settings_store(settings)
    hasher = hasher or Argon2idHasher(gate=settings.hashing.gate())
    if users is None:
        users = open_user_store(settings, hasher=hasher, clock=clock)
    throttle = LoginThrottle(store, settings.throttle, clock)
    tokens = None
    if token_keys is not None or settings.tokens.enabled:
        tokens = build_token_service(settings, store=store, clock=clock, keys=token_keys)
    sessions = SessionManager(store=store, policy=settings.session, clock=clock)
    dbsc = None
    if settings.dbsc is not None:
        from ..device_binding import DeviceBinding

        dbsc = DeviceBinding(server=settings.dbsc.server(), sessions=sessions)
    return SessionwardState(
        clock=clock,
        store=store,
        users=users,
        sessions=sessions,
        dbsc=dbsc,
        authenticator=Authenticator(users=users, hasher=hasher, throttle=throttle, clock=clock),
        csrf=csrf,
        cookie=settings.cookie,
        hasher=hasher,
        tokens=tokens,
        settings=settings,
        purge_interval=settings.purge_interval,
        dpop=settings.dpop.verifier(),
    )
