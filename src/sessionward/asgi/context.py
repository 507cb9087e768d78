"""The session and user of one request, and the calls that change them: `get_session`, `get_user`,
`login_user`, `logout_user`, `replace_session`, `csrf_token`, `verify_login_csrf`. Each takes the request
(`starlette.requests.Request`, or any `HTTPConnection`); the middleware writes the cookies they decide."""

from __future__ import annotations

import secrets
from time import perf_counter
from typing import Any

from starlette.requests import HTTPConnection

from ..exceptions import CSRFError
from ..metrics import SESSION_LATENCY
from ..sessions import Session
from ..users import User
from ..web import UNSET, RequestState
from .state import SessionwardState

__all__ = [
    "LOGIN_CSRF_COOKIE", "SCOPE_KEY", "STATE_KEY",
    "check_origin", "client_address", "context", "cookie_values", "csrf_failed", "csrf_token",
    "get_session", "get_user", "login_user", "logout_user", "own_origin", "replace_session", "verify_login_csrf",
]

LOGIN_CSRF_COOKIE = "__Host-login-csrf"
MAX_LOGIN_NONCE = 64  # a longer pre-session cookie value was not ours: make a new one
SCOPE_KEY = "sessionward"  #: the request's `RequestState` in the ASGI scope
STATE_KEY = "sessionward.state"  #: the app's `SessionwardState`


def context(conn: HTTPConnection) -> RequestState:
    """This request's `RequestState`. Raises RuntimeError when `SessionwardMiddleware` is not installed."""
    ctx = conn.scope.get(SCOPE_KEY)
    if ctx is None:
        raise RuntimeError("SessionwardMiddleware is not installed on this app (use Sessionward(app, settings))")
    return ctx  # type: ignore[no-any-return]


def state(conn: HTTPConnection) -> SessionwardState:
    """The app's `SessionwardState`. Raises RuntimeError when `SessionwardMiddleware` is not installed."""
    context(conn)
    return conn.scope[STATE_KEY]  # type: ignore[no-any-return]


def cookie_values(conn: HTTPConnection, name: str) -> list[str]:
    """Every value of cookie `name`, in every Cookie header (two of them is cookie tossing: callers trust none)."""
    values = []
    for key, raw in conn.scope["headers"]:
        if key != b"cookie":
            continue
        for chunk in raw.decode("latin-1").split(";"):
            key_text, sep, value = chunk.partition("=")
            if sep and key_text.strip() == name:
                value = value.strip()
                if value.startswith('"') and value.endswith('"') and len(value) > 1:
                    value = value[1:-1]
                values.append(value)
    return values


def session_cookie_value(conn: HTTPConnection) -> str | None:
    """The session cookie, or None. Two cookies with the session's name count as none (C9); the id is only ever
    read from the Cookie header, never from the URL or a form."""
    values = cookie_values(conn, state(conn).cookie.name)
    return values[0] if len(values) == 1 else None


def client_address(conn: HTTPConnection) -> str:
    client = conn.scope.get("client")
    return str(client[0]) if client else ""


_WEB_SCHEME = {"ws": "http", "wss": "https"}  # a WebSocket handshake's page has the http(s) origin


def own_origin(conn: HTTPConnection) -> str:
    scheme = conn.url.scheme
    return f"{_WEB_SCHEME.get(scheme, scheme)}://{conn.headers.get('host', '')}"


async def get_session(conn: HTTPConnection) -> Session | None:
    """The live session of this request, loaded once and only when asked (public pages pay nothing). A
    device-bound session counts only with its valid short cookie (DBSC). Raises `StoreUnavailable`."""
    ctx = context(conn)
    if ctx.session is UNSET:
        value = session_cookie_value(conn)
        session = None
        if value is not None:
            started = perf_counter()
            try:
                session = await state(conn).sessions.load(value)
            finally:
                SESSION_LATENCY.observe(perf_counter() - started)
            if session is None:
                ctx.dead_cookie = True  # expire it in the response
            else:
                binding = state(conn).dbsc
                if binding is not None and not binding.admits(session, cookie_values(conn, binding.policy.cookie_name)):
                    session = None  # device-bound without its short cookie: signed out until the browser refreshes
        ctx.session = session
    return ctx.session


async def get_user(conn: HTTPConnection) -> User | None:
    """The signed-in user: the access token's user once one was verified in this request, else the cookie
    session's; or None. A disabled account is no user. Raises `StoreUnavailable`."""
    ctx = context(conn)
    if ctx.user is UNSET:
        user: User | None = None
        user_id: str | None
        if ctx.claims is not None:
            user_id, epoch = ctx.claims.sub, ctx.claims.epoch
        else:
            session = await get_session(conn)
            user_id, epoch = (session.user_id, session.record.epoch) if session is not None else (None, 0)
        if user_id is not None:
            found = await state(conn).recent_users.get(user_id, epoch=epoch)
            if found is not None and not found.disabled:
                user = found
        ctx.user = user
    return ctx.user


async def login_user(conn: HTTPConnection, user: User, *, data: Any = None) -> Session:
    """Start a new session for `user` (after a successful `authenticate`). The previous session of this browser,
    if any, is deleted: its id stops working (fixation, C3). Raises `StoreUnavailable`."""
    ctx = context(conn)
    session: Session = await state(conn).sessions.login(
        user.id,
        previous_secret=session_cookie_value(conn),
        user_agent=conn.headers.get("user-agent", ""),
        ip=client_address(conn),
        **({"data": data} if data is not None else {}),
    )
    ctx.logged_in(session, user)
    ctx.logout = False
    binding = state(conn).dbsc
    if binding is not None:
        ctx.dbsc_offer = binding.offer(session)  # a DBSC browser answers by registering a key
    return session


def replace_session(conn: HTTPConnection, session: Session) -> None:
    """Make `session` (just rotated or re-issued, with its secret) the one this response sends."""
    context(conn).logged_in(session, None)


async def logout_user(conn: HTTPConnection) -> None:
    """End this browser's session on the server and clear the cookie (C5). Raises `StoreUnavailable`."""
    ctx = context(conn)
    session = await get_session(conn)
    if session is not None:
        await state(conn).sessions.logout(session)
    ctx.logged_out()
    ctx.new_cookie = None


async def csrf_token(conn: HTTPConnection) -> str:
    """The CSRF token for forms: bound to the session when there is one, else a login-form token bound to a
    short-lived pre-session cookie (sent with the response)."""
    ctx = context(conn)
    session = await get_session(conn)
    if session is not None and session.record.secret_hash:
        return state(conn).csrf.session_token(session.record.secret_hash)
    cookies = cookie_values(conn, LOGIN_CSRF_COOKIE)
    nonce = ctx.login_nonce or (cookies[0] if cookies else None)
    if not nonce or len(nonce) > MAX_LOGIN_NONCE:
        nonce = secrets.token_urlsafe(32)
        ctx.new_login_nonce = nonce
    ctx.login_nonce = nonce
    return state(conn).csrf.login_token(nonce)


def check_origin(conn: HTTPConnection) -> None:
    """Refuse a cross-site unsafe request (Origin / Sec-Fetch-Site). Raises `CSRFError`."""
    state(conn).csrf.check_origin(
        own_origin=own_origin(conn), origin=conn.headers.get("origin"),
        sec_fetch_site=conn.headers.get("sec-fetch-site"),
    )


def csrf_failed(conn: HTTPConnection) -> None:
    from .. import events

    events.emit("csrf_failed", path=conn.url.path, method=conn.scope.get("method"))


def submitted_csrf_token(conn: HTTPConnection) -> str | None:
    """`X-CSRF-Token`, else the `csrf_token` form field the middleware read from the body."""
    token = conn.headers.get("x-csrf-token")
    if token is None:
        token = conn.scope.get("sessionward.form_csrf")
    return token


def verify_login_csrf(conn: HTTPConnection) -> None:
    """For the login form (a `csrf_exempt` view): the origin check, then its token against the pre-session
    cookie (login CSRF). Raises `CSRFError`."""
    try:
        check_origin(conn)
        cookies = cookie_values(conn, LOGIN_CSRF_COOKIE)
        state(conn).csrf.verify_login_token(cookies[0] if cookies else None, submitted_csrf_token(conn))
    except CSRFError:
        csrf_failed(conn)
        raise
