"""The Flask extension: `Sessionward().init_app(app)`.

Thin by design: it reads and validates `SESSIONWARD_*` settings once, at start-up, through
`sessionward.settings.Settings` (a wrong or unknown one stops the app with a `ConfigError` naming its full key),
builds the core objects with `sessionward.web.build_state` into `app.extensions["sessionward"]`, and wires them
to requests: lazy session loading (a public page never touches the store), cookie writing, CSRF checks on
unsafe methods, security headers and error pages. All decisions are made by the core. Each request's state is
one typed `RequestState` (`context.request_state()`).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, Response, current_app, request

from ..clock import Clock
from ..csrf import UNSAFE_METHODS
from ..exceptions import ConfigError, CSRFError
from ..passwords import Argon2idHasher
from ..sessions import Session
from ..settings import Settings
from ..stores import SessionStore
from ..tokens import KeySource
from ..users import User, UserStore
from ..web import SessionwardState, build_state
from .body import bound_unframed_body
from .context import (
    EXTENSION_KEY,
    check_origin,
    csrf_failed,
    get_session,
    get_user,
    own_origin,
    request_cookies,
    request_method,
    request_state,
    request_state_if_any,
    session_cookie_value,
    state,
)
from .dbsc import register_dbsc
from .errors import register_error_handlers
from .headers import AUTHENTICATED, SecurityHeadersMiddleware
from .jwt import register_token_errors

__all__ = [
    "EXTENSION_KEY", "LOGIN_CSRF_COOKIE", "Sessionward", "SessionwardState", "csrf_exempt", "csrf_token",
    "get_session", "get_user", "login_user", "logout_user", "own_origin", "replace_session",
    "session_cookie_value", "state", "verify_login_csrf",
]

F = TypeVar("F", bound=Callable[..., Any])

LOGIN_CSRF_COOKIE = "__Host-login-csrf"
_MAX_LOGIN_NONCE = 64  # a longer pre-session cookie value was not ours: make a new one


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
        """Build and validate everything from `app.config` (`Settings.from_mapping`). Raises `ConfigError`
        naming the full key of a bad or unknown `SESSIONWARD_*` setting."""
        if app.debug:
            raise ConfigError("DEBUG", "sessionward refuses to run with Flask's debugger on")
        settings = Settings.from_mapping(app.config)
        st = build_state(settings, clock=clock, store=store, users=users, hasher=hasher, token_keys=token_keys)
        register_token_errors(app)
        app.extensions[EXTENSION_KEY] = st
        app.wsgi_app = SecurityHeadersMiddleware(app.wsgi_app)  # type: ignore[method-assign]
        app.before_request(_before_request)
        app.after_request(_finish_response)
        app.jinja_env.globals["csrf_token"] = csrf_token
        register_error_handlers(app)
        if st.dbsc is not None:
            register_dbsc(app, st.dbsc.policy)
        return st


# -- the session of this request ---------------------------------------------------------------

def login_user(user: User) -> Session:
    """Start a new session for `user` (after a successful `authenticate`). The previous session of this
    browser, if any, is deleted: its id stops working (fixation, C3)."""
    session = state().sessions.login(
        user.id,
        previous_secret=session_cookie_value(),
        user_agent=request.headers.get("User-Agent", ""),
        ip=request.remote_addr or "",
    )
    rs = request_state()
    rs.logged_in(session, user)
    binding = state().dbsc
    if binding is not None:
        rs.dbsc_offer = binding.offer(session)  # a DBSC browser answers by registering a key
    return session


def replace_session(session: Session) -> None:
    """Make `session` (just rotated or re-issued, with its secret) the one this response sends."""
    request_state().logged_in(session, None)


def logout_user() -> None:
    """End this browser's session on the server and clear the cookie (C5)."""
    session = get_session()
    if session is not None:
        state().sessions.logout(session)
    request_state().logged_out()


def csrf_token() -> str:
    """The CSRF token for forms: bound to the session when there is one, else a login-form token bound to a
    short-lived pre-session cookie."""
    st = state()
    session = get_session()
    if session is not None and session.record.secret_hash:
        return st.csrf.session_token(session.record.secret_hash)
    rs = request_state()
    nonce = rs.login_nonce or request_cookies().get(LOGIN_CSRF_COOKIE)
    if not nonce or len(nonce) > _MAX_LOGIN_NONCE:
        nonce = secrets.token_urlsafe(32)
        rs.new_login_nonce = nonce
    rs.login_nonce = nonce
    return st.csrf.login_token(nonce)


def verify_login_csrf() -> None:
    """For the login form (a `csrf_exempt` view): the origin check, then its token against the pre-session
    cookie (login CSRF). Raises CSRFError."""
    st = state()
    try:
        check_origin(st)
        st.csrf.verify_login_token(request_cookies().get(LOGIN_CSRF_COOKIE), _submitted_csrf_token())
    except CSRFError:
        csrf_failed()
        raise


def csrf_exempt(view: F) -> F:
    """Mark a view as not needing the session CSRF token (it must defend itself, e.g. bearer tokens only)."""
    view._sw_csrf_exempt = True  # type: ignore[attr-defined]
    return view


def _submitted_csrf_token() -> str | None:
    token = request.headers.get("X-CSRF-Token")
    if token is None and request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        token = request.form.get("csrf_token")
    return token


def _before_request() -> None:
    """The one `before_request` hook (one dispatch by Flask instead of two): the body bound first, so that a
    chunked body past the limit is 413, not cut (O5); then the CSRF check."""
    environ = request.environ
    bound_unframed_body(environ)
    if request_method(environ) in UNSAFE_METHODS:
        _check_csrf()


def _check_csrf() -> None:
    """Before an unsafe request: origin check, then the session's synchronizer token if a session cookie came."""
    view = current_app.view_functions.get(request.endpoint or "")
    if view is not None and getattr(view, "_sw_csrf_exempt", False):
        return
    st = state()
    try:
        check_origin(st)
        session = get_session()
        if session is not None and session.record.secret_hash:
            st.csrf.verify_session_token(session.record.secret_hash, _submitted_csrf_token())
    except CSRFError:
        csrf_failed()
        raise


def _finish_response(response: Response) -> Response:
    st: SessionwardState = current_app.extensions[EXTENSION_KEY]
    st.maybe_purge()
    environ = request.environ
    rs = request_state_if_any(environ)
    if rs is None:
        return response  # nothing of sessionward's ran in this request: nothing to add
    cookie = st.cookie
    if rs.new_cookie:
        response.set_cookie(
            cookie.name,
            rs.new_cookie,
            max_age=int(st.sessions.policy.absolute_lifetime),
            path="/",
            secure=cookie.secure,
            httponly=cookie.httponly,
            samesite=cookie.samesite,
        )
    elif rs.logout or rs.dead_cookie:
        # logged out, or the browser sent a dead session cookie: expire it
        response.delete_cookie(cookie.name, path="/", secure=cookie.secure, httponly=True, samesite=cookie.samesite)
        if rs.logout:
            response.headers["Clear-Site-Data"] = '"cache", "cookies", "storage"'
            if st.dbsc is not None:
                response.delete_cookie(st.dbsc.policy.cookie_name, path="/", secure=True, httponly=True,
                                       samesite=st.dbsc.policy.cookie_samesite)
    if rs.dbsc_offer:
        response.headers["Secure-Session-Registration"] = rs.dbsc_offer
    if rs.new_login_nonce:
        response.set_cookie(
            LOGIN_CSRF_COOKIE, rs.new_login_nonce, max_age=3600, path="/", secure=True, httponly=True,
            samesite="Lax",
        )
        response.headers["Cache-Control"] = "no-store"  # a shared cache must never hand one nonce to many
    if rs.dpop_nonce:
        response.headers["DPoP-Nonce"] = rs.dpop_nonce
    if rs.no_store:
        environ[AUTHENTICATED] = True  # SecurityHeadersMiddleware: Cache-Control: no-store
    return response
