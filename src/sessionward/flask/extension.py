"""The Flask extension: `Sessionward().init_app(app)`.

Thin by design: it reads and validates `SESSIONWARD_*` settings once, at start-up (a wrong one stops the app
with a `ConfigError` naming it), keeps the core objects in `app.extensions["sessionward"]`, and wires them to
requests: lazy session loading (a public page never touches the store), cookie writing, CSRF checks on unsafe
methods, security headers and error pages. All decisions are made by the core.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from time import perf_counter
from typing import Any, TypeVar

from flask import Flask, Response, current_app, g, request

from ..auth import Authenticator
from ..clock import Clock, SystemClock
from ..config import CookiePolicy, SessionPolicy, ThrottlePolicy
from ..csrf import UNSAFE_METHODS, CSRFProtector
from ..db import make_engine
from ..exceptions import ConfigError, CSRFError
from ..metrics import SESSION_LATENCY
from ..passwords import DEFAULT_HASH_CONCURRENCY, Argon2idHasher, HashGate, PasswordPolicy
from ..sessions import Session, SessionManager
from ..stores import SessionStore, open_store, store_options
from ..throttle import LoginThrottle
from ..tokens import KeySource
from ..users import RecentUsers, User, UserStore
from .body import bound_unframed_body
from .errors import register_error_handlers
from .headers import AUTHENTICATED, SecurityHeadersMiddleware
from .jwt import init_tokens

F = TypeVar("F", bound=Callable[..., Any])

EXTENSION_KEY = "sessionward"
LOGIN_CSRF_COOKIE = "__Host-login-csrf"
_UNSET = object()
_MAX_LOGIN_NONCE = 64  # a longer pre-session cookie value was not ours: make a new one
FIRST_PURGE_DELAY = 60.0  #: seconds after start-up before the first purge of expired records


@dataclass
class SessionwardState:
    """Everything the extension built at start-up, kept in `app.extensions["sessionward"]`."""

    clock: Clock
    store: SessionStore
    users: UserStore
    sessions: SessionManager
    authenticator: Authenticator
    csrf: CSRFProtector
    cookie: CookiePolicy
    hasher: Argon2idHasher
    extras: dict[str, Any] = field(default_factory=dict)  # e.g. "tokens": TokenService
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
                logging.getLogger("sessionward.flask").warning("purge of expired sessions failed", exc_info=True)
            finally:
                self._purge_lock.release()

        threading.Thread(target=run, name="sessionward-purge", daemon=True).start()


def _key(app: Flask, name: str) -> bytes:
    value = app.config.get(name)
    if value is None:
        raise ConfigError(name, "is required (32+ random bytes); sessionward never falls back to SECRET_KEY")
    if isinstance(value, str):
        try:
            value = bytes.fromhex(value)
        except ValueError:
            raise ConfigError(name, "must be bytes or hex text of 32+ random bytes") from None
    return value  # length and randomness are checked by the consumer (config.check_key)


def _whole(app: Flask, name: str, default: int) -> int:
    value = _number(app, name, default)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value != int(value):
        raise ConfigError(name, f"must be a whole number, got {value!r}")
    return int(value)


def _hash_gate(app: Flask) -> HashGate:
    """The per-process bound on password hashing (SECURITY.md O7), from SESSIONWARD_HASH_CONCURRENCY,
    SESSIONWARD_HASH_QUEUE and SESSIONWARD_HASH_WAIT. Raises `ConfigError` naming a bad one."""
    concurrency = _whole(app, "SESSIONWARD_HASH_CONCURRENCY", DEFAULT_HASH_CONCURRENCY)
    queue = _whole(app, "SESSIONWARD_HASH_QUEUE", 4 * max(concurrency, 0))
    return HashGate(concurrency, max_waiting=queue, max_wait=_number(app, "SESSIONWARD_HASH_WAIT", 5.0))


def _number(app: Flask, name: str, default: float) -> float:
    value = app.config.get(name, default)
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ConfigError(name, f"must be a number, got {value!r}") from None
    return value


class Sessionward:
    """Flask integration. `Sessionward(app)` or `sw = Sessionward(); sw.init_app(app)`."""

    def __init__(self, app: Flask | None = None, **options: Any) -> None:
        if app is not None:
            self.init_app(app, **options)

    def init_app(
        self,
        app: Flask,
        *,
        clock: Clock | None = None,
        store: SessionStore | None = None,
        users: UserStore | None = None,
        hasher: Argon2idHasher | None = None,
        token_keys: KeySource | None = None,
    ) -> SessionwardState:
        """Build and validate everything from `app.config`. Raises `ConfigError` naming a bad setting."""
        if app.debug:
            raise ConfigError("DEBUG", "sessionward refuses to run with Flask's debugger on")
        cfg = app.config
        clock = clock or SystemClock()
        if store is None:
            url = cfg.get("SESSIONWARD_STORE_URL")
            if not url:
                raise ConfigError("SESSIONWARD_STORE_URL", "is required (sqlite:///..., postgresql://..., redis://...)")
            store = open_store(url, **store_options(url, cfg))
        session_policy = SessionPolicy(
            idle_timeout=_number(app, "SESSIONWARD_SESSION_IDLE_TIMEOUT", 30 * 60),
            absolute_lifetime=_number(app, "SESSIONWARD_SESSION_ABSOLUTE_LIFETIME", 12 * 3600),
            touch_interval=_number(app, "SESSIONWARD_SESSION_TOUCH_INTERVAL", 60),
            reauth_window=_number(app, "SESSIONWARD_SESSION_REAUTH_WINDOW", 10 * 60),
        )
        cookie = CookiePolicy(
            name=cfg.get("SESSIONWARD_COOKIE_NAME", "__Host-session"),
            samesite=cfg.get("SESSIONWARD_COOKIE_SAMESITE", "Lax"),
        )
        hasher = hasher or Argon2idHasher(gate=_hash_gate(app))
        if users is None:
            db_url = cfg.get("SESSIONWARD_DATABASE_URL")
            if not db_url:
                raise ConfigError("SESSIONWARD_DATABASE_URL", "is required (sqlite:///... or postgresql://...)")
            users = UserStore(make_engine(db_url), hasher=hasher, policy=PasswordPolicy(), clock=clock)
        throttle = LoginThrottle(
            store,
            ThrottlePolicy(
                account_free=int(_number(app, "SESSIONWARD_THROTTLE_ACCOUNT_FREE", 5)),
                address_free=int(_number(app, "SESSIONWARD_THROTTLE_ADDRESS_FREE", 20)),
                max_backoff=_number(app, "SESSIONWARD_THROTTLE_MAX_BACKOFF", 15 * 60),
            ),
            clock,
        )
        state = SessionwardState(
            clock=clock,
            store=store,
            users=users,
            sessions=SessionManager(store=store, policy=session_policy, clock=clock),
            authenticator=Authenticator(users=users, hasher=hasher, throttle=throttle, clock=clock),
            csrf=CSRFProtector(
                _key(app, "SESSIONWARD_CSRF_KEY"), trusted_origins=cfg.get("SESSIONWARD_TRUSTED_ORIGINS", ())
            ),
            cookie=cookie,
            hasher=hasher,
            purge_interval=_number(app, "SESSIONWARD_PURGE_INTERVAL", 600),
        )
        init_tokens(app, state, keys=token_keys)  # state.extras["tokens"], if SESSIONWARD_REFRESH_KEY is set
        app.extensions[EXTENSION_KEY] = state
        app.wsgi_app = SecurityHeadersMiddleware(app.wsgi_app)  # type: ignore[method-assign]
        app.before_request(bound_unframed_body)  # first: a chunked body past the limit is 413, not cut (O5)
        app.before_request(_check_csrf)
        app.after_request(_finish_response)
        app.jinja_env.globals["csrf_token"] = csrf_token
        register_error_handlers(app)
        return state


def state() -> SessionwardState:
    return current_app.extensions[EXTENSION_KEY]  # type: ignore[no-any-return]


# -- the session of this request ---------------------------------------------------------------

def session_cookie_value(st: SessionwardState | None = None) -> str | None:
    """The session cookie, or None. Two cookies with the session's name (cookie tossing) count as none (C9);
    the id is only ever read from the Cookie header, never from the URL or a form."""
    values = request.cookies.getlist((st or state()).cookie.name)
    if len(values) != 1:
        return None
    return values[0]


def get_session() -> Session | None:
    """The live session of this request, loaded once and only when asked (public pages pay nothing)."""
    cached = g.get("_sw_session", _UNSET)
    if cached is _UNSET:
        st = state()
        value = session_cookie_value(st)
        if value is None:
            cached = None
        else:
            started = perf_counter()
            try:
                cached = st.sessions.load(value)
            finally:
                SESSION_LATENCY.observe(perf_counter() - started)
            if cached is None:
                g._sw_dead_cookie = True  # expire it in the response
        g._sw_session = cached
    return cached  # type: ignore[return-value]


def get_user() -> User | None:
    """The signed-in user of this request: the access token's user once one was verified in this request
    (`jwt_required`), else the cookie session's; or None. A disabled account is no user."""
    flags = vars(g._get_current_object())
    cached = flags.get("_sw_user", _UNSET)
    if cached is _UNSET:
        cached = None
        claims = flags.get("_sw_jwt_claims")
        if claims is not None:
            user_id, epoch = claims.sub, claims.epoch
        else:
            session = get_session()
            user_id, epoch = (session.user_id, session.record.epoch) if session is not None else (None, 0)
        if user_id is not None:
            user = state().recent_users.get(user_id, epoch=epoch)
            if user is not None and not user.disabled:
                cached = user
        flags["_sw_user"] = cached
    return cached  # type: ignore[return-value]


def login_user(user: User) -> Session:
    """Start a new session for `user` (after a successful `authenticate`). The previous session of this
    browser, if any, is deleted: its id stops working (fixation, C3)."""
    st = state()
    session = st.sessions.login(
        user.id,
        previous_secret=session_cookie_value(),
        user_agent=request.headers.get("User-Agent", ""),
        ip=request.remote_addr or "",
    )
    g._sw_session, g._sw_user, g._sw_cookie = session, user, session.secret
    return session


def replace_session(session: Session) -> None:
    """Make `session` (just rotated or re-issued, with its secret) the one this response sends."""
    g._sw_session, g._sw_cookie = session, session.secret
    g.pop("_sw_user", None)


def logout_user() -> None:
    """End this browser's session on the server and clear the cookie (C5)."""
    session = get_session()
    if session is not None:
        state().sessions.logout(session)
    g._sw_session, g._sw_user, g._sw_logout = None, None, True


def csrf_token() -> str:
    """The CSRF token for forms: bound to the session when there is one, else a login-form token bound to a
    short-lived pre-session cookie."""
    st = state()
    session = get_session()
    if session is not None and session.record.secret_hash:
        return st.csrf.session_token(session.record.secret_hash)
    nonce = g.get("_sw_login_nonce") or request.cookies.get(LOGIN_CSRF_COOKIE)
    if not nonce or len(nonce) > _MAX_LOGIN_NONCE:
        nonce = secrets.token_urlsafe(32)
        g._sw_new_login_nonce = nonce
    g._sw_login_nonce = nonce
    return st.csrf.login_token(nonce)


def verify_login_csrf() -> None:
    """For the login form (a `csrf_exempt` view): the origin check, then its token against the pre-session
    cookie (login CSRF). Raises CSRFError."""
    st = state()
    try:
        _check_origin(st)
        st.csrf.verify_login_token(request.cookies.get(LOGIN_CSRF_COOKIE), _submitted_csrf_token())
    except CSRFError:
        _csrf_failed()
        raise


def _check_origin(st: SessionwardState) -> None:
    st.csrf.check_origin(
        own_origin=own_origin(),
        origin=request.headers.get("Origin"),
        sec_fetch_site=request.headers.get("Sec-Fetch-Site"),
    )


def _csrf_failed() -> None:
    from .. import events

    events.emit("csrf_failed", path=request.path, method=request.method)


def csrf_exempt(view: F) -> F:
    """Mark a view as not needing the session CSRF token (it must defend itself, e.g. bearer tokens only)."""
    view._sw_csrf_exempt = True  # type: ignore[attr-defined]
    return view


def _submitted_csrf_token() -> str | None:
    token = request.headers.get("X-CSRF-Token")
    if token is None and request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        token = request.form.get("csrf_token")
    return token


def own_origin() -> str:
    return f"{request.scheme}://{request.host}"


def _check_csrf() -> None:
    """Before every unsafe request: origin check, then the session's synchronizer token if a session cookie came."""
    if request.method not in UNSAFE_METHODS:
        return
    view = current_app.view_functions.get(request.endpoint or "")
    if view is not None and getattr(view, "_sw_csrf_exempt", False):
        return
    st = state()
    try:
        _check_origin(st)
        session = get_session()
        if session is not None and session.record.secret_hash:
            st.csrf.verify_session_token(session.record.secret_hash, _submitted_csrf_token())
    except CSRFError:
        _csrf_failed()
        raise


def _finish_response(response: Response) -> Response:
    st = state()
    st.maybe_purge()
    flags = vars(g._get_current_object())  # one context lookup instead of one per flag
    cookie = st.cookie
    new_secret = flags.get("_sw_cookie")
    if new_secret:
        response.set_cookie(
            cookie.name,
            new_secret,
            max_age=int(st.sessions.policy.absolute_lifetime),
            path="/",
            secure=cookie.secure,
            httponly=cookie.httponly,
            samesite=cookie.samesite,
        )
    elif flags.get("_sw_logout") or flags.get("_sw_dead_cookie"):
        # logged out, or the browser sent a dead session cookie: expire it
        response.delete_cookie(cookie.name, path="/", secure=cookie.secure, httponly=True, samesite=cookie.samesite)
        if flags.get("_sw_logout"):
            response.headers["Clear-Site-Data"] = '"cache", "cookies", "storage"'
    nonce = flags.get("_sw_new_login_nonce")
    if nonce:
        response.set_cookie(
            LOGIN_CSRF_COOKIE, nonce, max_age=3600, path="/", secure=True, httponly=True, samesite="Lax"
        )
        response.headers["Cache-Control"] = "no-store"  # a shared cache must never hand one nonce to many
    if new_secret or flags.get("_sw_authenticated") or flags.get("_sw_session") not in (None, _UNSET):
        request.environ[AUTHENTICATED] = True  # SecurityHeadersMiddleware: Cache-Control: no-store
    return response
