"""This app's `SessionwardState` and this request's `RequestState` (kept in the request's WSGI environ), and the
reads of the request that both the cookie-session side (`extension.py`) and the token side (`jwt.py`) need.
Importing only downwards, so neither of those imports the other."""

from __future__ import annotations

from time import perf_counter
from typing import Any

from flask import current_app, request
from werkzeug.datastructures import ImmutableMultiDict, MultiDict
from werkzeug.sansio.http import parse_cookie

from ..metrics import SESSION_LATENCY
from ..sessions import Session
from ..users import User
from ..web import UNSET, RequestState, SessionwardState

__all__ = [
    "EXTENSION_KEY", "check_origin", "csrf_failed", "get_session", "get_user", "own_origin", "request_state",
    "request_cookies", "request_method", "request_state_if_any", "session_cookie_value", "state", "user_of",
]

EXTENSION_KEY = "sessionward"
#: the WSGI environ key holding this request's `RequestState`. Not `flask.g`: Flask reuses an app context that is
#: already pushed (and its `g`) for every request made inside it, so state kept there would outlive the request.
_ENVIRON_KEY = "sessionward.request_state"
_COOKIES_KEY = "sessionward.cookies"


def state() -> SessionwardState:
    """This app's `SessionwardState`."""
    return current_app.extensions[EXTENSION_KEY]  # type: ignore[no-any-return]


def request_state(environ: dict[str, Any] | None = None) -> RequestState:
    """This request's `RequestState`, made on first use and kept in the request's own environ (`environ`: the
    request's, for a caller that holds it; else looked up)."""
    if environ is None:
        environ = request.environ
    current = environ.get(_ENVIRON_KEY)
    if current is None:
        current = environ[_ENVIRON_KEY] = RequestState()
    return current


def request_method(environ: dict[str, Any]) -> str:
    """The request's method as `request.method` gives it, from the environ the caller already holds."""
    return str(environ.get("REQUEST_METHOD", "GET")).upper()


def request_state_if_any(environ: dict[str, Any]) -> RequestState | None:
    """This request's `RequestState` if anything made it (None: nothing of sessionward's ran in the request)."""
    return environ.get(_ENVIRON_KEY)


def request_cookies(environ: dict[str, Any] | None = None) -> MultiDict[str, str]:
    """The request's cookies, parsed once per request by the very parser behind `request.cookies` and from the
    same text: WSGI hands the Cookie header over as `HTTP_COOKIE`, which is all that `request.cookies` joins
    after walking every header of the environ (`headers.getlist("Cookie")`); this reads it directly."""
    if environ is None:
        environ = request.environ
    cookies = environ.get(_COOKIES_KEY)
    if cookies is None:
        cookies = environ[_COOKIES_KEY] = parse_cookie(environ.get("HTTP_COOKIE") or "", cls=ImmutableMultiDict)
    return cookies


def session_cookie_value(st: SessionwardState | None = None) -> str | None:
    """The session cookie, or None. Two cookies with the session's name (cookie tossing) count as none (C9);
    the id is only ever read from the Cookie header, never from the URL or a form."""
    values = request_cookies().getlist((st or state()).cookie.name)
    if len(values) != 1:
        return None
    return values[0]


def get_session() -> Session | None:
    """The live session of this request, loaded once and only when asked (public pages pay nothing). A
    device-bound session counts only with its valid short cookie (DBSC); its long cookie is kept for the refresh."""
    rs = request_state()
    session = rs.session
    if session is UNSET:
        st = state()
        value = session_cookie_value(st)
        if value is None:
            session = None
        else:
            started = perf_counter()
            try:
                session = st.sessions.load(value)
            finally:
                SESSION_LATENCY.observe(perf_counter() - started)
            if session is None:
                rs.dead_cookie = True  # expire it in the response
            elif st.dbsc is not None and not st.dbsc.admits(
                session, request_cookies().getlist(st.dbsc.policy.cookie_name)
            ):
                session = None  # device-bound without its short cookie: signed out until the browser refreshes
        rs.session = session
    return session


def get_user() -> User | None:
    """The signed-in user of this request: the access token's user once one was verified in this request
    (`jwt_required`), else the cookie session's; or None. A disabled account is no user."""
    return user_of(request_state(), None)


def user_of(rs: RequestState, st: SessionwardState | None) -> User | None:
    """`get_user` for a caller that holds the request's state (and the app's, or None to look it up)."""
    user = rs.user
    if user is UNSET:
        user = None
        claims = rs.claims
        user_id: str | None
        if claims is not None:
            user_id, epoch = claims.sub, claims.epoch
        else:
            session = get_session()
            user_id, epoch = (session.user_id, session.record.epoch) if session is not None else (None, 0)
        if user_id is not None:
            found = (st or state()).recent_users.get(user_id, epoch=epoch)
            if found is not None and not found.disabled:
                user = found
        rs.user = user
    return user


def own_origin() -> str:
    return f"{request.scheme}://{request.host}"


def check_origin(st: SessionwardState) -> None:
    """The Origin / Sec-Fetch-Site check of an unsafe request. Raises CSRFError."""
    st.csrf.check_origin(
        own_origin=own_origin(),
        origin=request.headers.get("Origin"),
        sec_fetch_site=request.headers.get("Sec-Fetch-Site"),
    )


def csrf_failed() -> None:
    from .. import events

    events.emit("csrf_failed", path=request.path, method=request.method)

