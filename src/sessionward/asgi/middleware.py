"""`SessionwardMiddleware`: the request edge on ASGI, as the Flask extension's hooks are on WSGI.

For each HTTP request, in order: a body past `max_body` is 413 (declared or chunked, read at most one byte past
the limit, never cut and parsed as if whole: O5); an unsafe request passes the origin check and, when a session
cookie came, the session's synchronizer token (`X-CSRF-Token` or the `csrf_token` form field), unless its view
is `csrf_exempt` or needs a bearer token; then the app runs. On the way out: the session cookie is set, rotated
or expired as the request decided, the login-CSRF cookie is set, an authenticated answer gets `no-store` and
`Vary: Cookie`, and every answer (error pages included) gets the security headers. A refusal raised here or an
unexpected error is answered in the one error shape.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qsl

from starlette import status
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..csrf import UNSAFE_METHODS
from ..exceptions import CSRFError, StoreUnavailable
from ..httpshape import HSTS, STATIC_HEADERS
from ..web import RequestState
from ._routes import ExemptTable
from .context import (
    LOGIN_CSRF_COOKIE,
    SCOPE_KEY,
    STATE_KEY,
    check_origin,
    csrf_failed,
    get_session,
    submitted_csrf_token,
)
from .errors import exception_response
from .state import SessionwardState

__all__ = ["DEFAULT_MAX_BODY", "SessionwardMiddleware", "csrf_exempt"]

log = logging.getLogger("sessionward.asgi")
DEFAULT_MAX_BODY = 1024 * 1024
_FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")
_STATIC = [(k.lower().encode(), v.encode()) for k, v in STATIC_HEADERS.items()]
_HSTS = (b"strict-transport-security", HSTS.encode())
_NO_STORE = [(b"cache-control", b"no-store"), (b"pragma", b"no-cache")]


def csrf_exempt(view: Any) -> Any:
    """Mark a view as not needing the session CSRF token (it must defend itself, e.g. bearer tokens only)."""
    view._sw_csrf_exempt = True
    return view


class _TooLarge(Exception):
    pass


class _BadLength(Exception):
    pass


class SessionwardMiddleware:
    """`app.add_middleware(SessionwardMiddleware, state=...)`; `Sessionward(app, settings)` adds it for you."""

    def __init__(self, app: ASGIApp, *, state: SessionwardState, max_body: int | None = DEFAULT_MAX_BODY) -> None:
        self.app = app
        self.state = state
        self.max_body = max_body
        self._exempt: ExemptTable | None = None  # built at the first unsafe request, when every route exists

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        ctx = RequestState()
        scope[SCOPE_KEY] = ctx
        scope[STATE_KEY] = self.state
        conn = HTTPConnection(scope)
        started = False
        https = scope.get("scheme") == "https"

        async def send_wrapper(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message = {**message, "headers": self._finish(ctx, list(message.get("headers", [])), https)}
            await send(message)

        try:
            await self.state.open()  # once: at lifespan start-up, or here when the server runs no lifespan
            if scope["method"] in UNSAFE_METHODS or _has_body(scope):
                receive = await self._read_body(scope, receive)
            if scope["method"] in UNSAFE_METHODS and not self._is_exempt(scope):
                await _check_csrf(conn)
            await self.app(scope, receive, send_wrapper)
        except Exception as exc:
            if started:
                raise
            if isinstance(exc, _TooLarge):
                from starlette.exceptions import HTTPException

                exc = HTTPException(413)
            elif isinstance(exc, _BadLength):
                from starlette.exceptions import HTTPException

                exc = HTTPException(400)
            response = exception_response(conn, exc)
            await response(scope, receive, send_wrapper)

    # -- websockets -------------------------------------------------------------------------------
    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A WebSocket handshake gets the request's session context (`get_user(websocket)`, `CurrentUser` on a
        websocket route). A handshake that carries cookies must come from our own origin or a trusted one
        (`SESSIONWARD_TRUSTED_ORIGINS`): browsers send cookies with cross-site handshakes too, and no CORS or
        preflight guards a WebSocket, so without the check any page could act over a socket as its visitor
        (cross-site WebSocket hijacking; ASVS 5.0 4.4.2). A refused handshake is closed before it is accepted
        (code 1008, which servers answer with HTTP 403); so is one while the store cannot be reached (1013, try
        again later). A handshake without cookies carries no credentials and is left to the app."""
        scope[SCOPE_KEY] = RequestState()
        scope[STATE_KEY] = self.state
        conn = HTTPConnection(scope)
        try:
            await self.state.open()
            if _header(scope, b"cookie") is not None:
                check_origin(conn)
        except CSRFError:
            csrf_failed(conn)
            await send({"type": "websocket.close", "code": status.WS_1008_POLICY_VIOLATION,
                        "reason": "cross-site handshake"})
            return
        except StoreUnavailable:  # no session context can be had: fail closed, the client may retry
            await send({"type": "websocket.close", "code": status.WS_1013_TRY_AGAIN_LATER, "reason": ""})
            return
        await self.app(scope, receive, send)

    # -- the body ---------------------------------------------------------------------------------
    async def _read_body(self, scope: Scope, receive: Receive) -> Receive:
        """The whole body, read now (at most `max_body` + 1 bytes), replayed to the app; the form's `csrf_token`
        is noted in the scope. Raises `_TooLarge` (413) or `_BadLength` (400)."""
        limit = self.max_body
        declared = _header(scope, b"content-length")
        if declared is not None:
            if not declared.isdigit():
                raise _BadLength()
            if limit is not None and int(declared) > limit:
                raise _TooLarge()
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if limit is not None and size > limit:
                raise _TooLarge()
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        await _note_form_token(scope, body)
        return _replay(body, receive)

    def _is_exempt(self, scope: Scope) -> bool:
        """The matching route's view is `csrf_exempt`, or it needs a bearer token (a header token cannot be
        forged cross-site; a cookie token gets its own double-submit check)."""
        if self._exempt is None:
            self._exempt = ExemptTable(getattr(scope.get("app"), "router", None) or getattr(self.app, "router", None))
        return self._exempt.exempt(scope["path"], scope["method"])

    # -- the response ------------------------------------------------------------------------------
    def _finish(
        self, ctx: RequestState, headers: list[tuple[bytes, bytes]], https: bool
    ) -> list[tuple[bytes, bytes]]:
        st = self.state
        st.maybe_purge()
        cookie = st.cookie
        jar = Response()
        jar.raw_headers.clear()
        if ctx.new_cookie:
            jar.set_cookie(cookie.name, ctx.new_cookie, max_age=int(st.settings.session.absolute_lifetime), path="/",
                           secure=cookie.secure, httponly=cookie.httponly, samesite=cookie.samesite.lower())  # type: ignore[arg-type]
        elif ctx.logout or ctx.dead_cookie:
            jar.delete_cookie(cookie.name, path="/", secure=cookie.secure, httponly=True,
                              samesite=cookie.samesite.lower())  # type: ignore[arg-type]
            if ctx.logout:
                headers.append((b"clear-site-data", b'"cache", "cookies", "storage"'))
        _dbsc_headers(st, ctx, jar, headers)
        if ctx.new_login_nonce:
            jar.set_cookie(LOGIN_CSRF_COOKIE, ctx.new_login_nonce, max_age=3600, path="/", secure=True,
                           httponly=True, samesite="lax")
            headers = [(k, v) for k, v in headers if k.lower() != b"cache-control"]
            headers.append((b"cache-control", b"no-store"))  # a shared cache must never hand one nonce to many
        headers.extend(jar.raw_headers)
        if ctx.dpop_nonce:
            headers.append((b"dpop-nonce", ctx.dpop_nonce.encode("ascii")))
        present = {k.lower() for k, _ in headers}
        extra = [(k, v) for k, v in _STATIC if k not in present]
        if https and _HSTS[0] not in present:
            extra.append(_HSTS)
        if ctx.no_store:
            vary = b""
            kept = []
            for name, value in headers:
                lname = name.lower()
                if lname == b"vary":
                    vary = value
                elif lname not in (b"cache-control", b"pragma"):
                    kept.append((name, value))
            if b"cookie" not in vary.lower():
                vary = vary + b", Cookie" if vary else b"Cookie"
            headers = [*kept, *_NO_STORE, (b"vary", vary)]
        return headers + extra


def _dbsc_headers(st: SessionwardState, ctx: RequestState, jar: Response, headers: list[tuple[bytes, bytes]]) -> None:
    """DBSC: the registration offer at login; the short cookie expired with the session at logout."""
    if ctx.dbsc_offer:
        headers.append((b"secure-session-registration", ctx.dbsc_offer.encode("ascii")))
    dbsc = st.settings.dbsc
    if ctx.logout and dbsc is not None:
        jar.delete_cookie(dbsc.policy.cookie_name, path="/", secure=True, httponly=True,
                          samesite=dbsc.policy.cookie_samesite.lower())  # type: ignore[arg-type]


def _has_body(scope: Scope) -> bool:
    return _header(scope, b"content-length") not in (None, "0") or _header(scope, b"transfer-encoding") is not None


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            text: str = value.decode("latin-1").strip()
            return text
    return None


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that gives `body` once, then whatever the server sends (the disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _note_form_token(scope: Scope, body: bytes) -> None:
    mimetype = (_header(scope, b"content-type") or "").split(";", 1)[0].strip().lower()
    if mimetype not in _FORMS or not body:
        return
    token: Any = None
    if mimetype == _FORMS[0]:
        for name, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
            if name == "csrf_token":
                token = value
                break
    else:
        try:
            async with Request(scope, _replay(body, _no_more)).form() as form:
                token = form.get("csrf_token")
        except Exception:  # a malformed multipart body has no token; the view's own parse answers 400
            token = None
    if isinstance(token, str):
        scope["sessionward.form_csrf"] = token


async def _no_more() -> Message:
    return {"type": "http.disconnect"}


async def _check_csrf(conn: HTTPConnection) -> None:
    """Origin check, then the session's synchronizer token if a session cookie came. Raises `CSRFError`."""
    try:
        check_origin(conn)
        session = await get_session(conn)
        if session is not None and session.record.secret_hash:
            conn.scope[STATE_KEY].csrf.verify_session_token(session.record.secret_hash,
                                                                  submitted_csrf_token(conn))
    except CSRFError:
        csrf_failed(conn)
        raise
