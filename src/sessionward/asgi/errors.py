"""The one error shape on ASGI, answer for answer as on Flask (`sessionward.httpshape`): JSON
`{"error": {"code", "message"}}` for API clients, the plain page for browsers, the RFC 6750 challenges with the
realm, `Retry-After` on 429/503. Never a traceback, never a secret: unexpected errors are logged and answered 500."""

from __future__ import annotations

import contextlib
import logging
from http import HTTPStatus
from typing import Any

from jinja2 import Environment
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.responses import JSONResponse as _JSONResponse

from ..bearer import bearer_refusal
from ..dpop import DPoPError
from ..exceptions import SessionwardError
from ..httpshape import ERROR_PAGE, TITLES, error_answer, error_body, http_error
from ..text import log_safe
from ..web.dpop import www_authenticate
from .context import SCOPE_KEY, STATE_KEY

__all__ = ["JSONResponse", "SignInFirst", "error_response", "exception_response", "wants_json"]


class JSONResponse(_JSONResponse):
    """Starlette's compact JSON answer ending in a newline, as Flask's `jsonify` ends it: both services send the
    same bytes (a shell script that prints two answers in a row sees two lines from either)."""

    def render(self, content: object) -> bytes:
        return super().render(content) + b"\n"

log = logging.getLogger("sessionward.asgi")
_PAGE = Environment(autoescape=True).from_string(ERROR_PAGE)


class SignInFirst(Exception):
    """Raised by `login_required` for a browser without a session: a 303 to the login page with `?next=`."""

    def __init__(self, location: str) -> None:
        super().__init__(location)
        self.location = location


def _mimetype(value: str | None) -> str:
    return (value or "").split(";", 1)[0].strip().lower()


def _quality(accept: str, wanted: str) -> float:
    """The client's quality for `wanted` from an Accept header: the most specific matching range wins."""
    best: tuple[int, float] = (-1, 0.0)
    kind = wanted.split("/", 1)[0]
    for item in accept.split(","):
        media, *params = (p.strip() for p in item.split(";"))
        media = media.lower()
        specificity = 2 if media == wanted else 1 if media == f"{kind}/*" else 0 if media == "*/*" else -1
        if specificity < 0:
            continue
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        best = max(best, (specificity, q))
    return best[1] if best[0] >= 0 else 0.0


def wants_json(conn: HTTPConnection) -> bool:
    """JSON for `/api/...`, a JSON request body, or an Accept header that prefers JSON over HTML."""
    if conn.url.path.startswith("/api/"):
        return True
    mimetype = _mimetype(conn.headers.get("content-type"))
    if mimetype == "application/json" or (mimetype.startswith("application/") and mimetype.endswith("+json")):
        return True
    accept = conn.headers.get("accept")
    if not accept:
        return False
    html, json = _quality(accept, "text/html"), _quality(accept, "application/json")
    return json > 0 and json > html


def error_response(
    conn: HTTPConnection, status: int, code: str, message: str, *, headers: dict[str, str] | None = None
) -> Response:
    if wants_json(conn):
        response: Response = JSONResponse(error_body(code, message), status_code=status)
    else:
        page = _PAGE.render(status=status, title=TITLES.get(status, "Error"), message=message)
        response = HTMLResponse(page, status_code=status)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _token_challenge(conn: HTTPConnection, **params: str) -> str:
    """The `WWW-Authenticate` value of a token refusal in this request (`sessionward.web.dpop.www_authenticate`):
    the scheme(s) the token check chose for it (RFC 9449 7.1, 7.2); RFC 6750 `Bearer` outside token checks."""
    ctx = conn.scope.get(SCOPE_KEY)
    st = conn.scope.get(STATE_KEY)
    return www_authenticate(getattr(st, "dpop", None), getattr(ctx, "challenge", None), **params)


def _sessionward_error(conn: HTTPConnection, exc: SessionwardError) -> Response:
    if isinstance(exc, DPoPError):  # at a protected resource: 401 and the core's WWW-Authenticate: DPoP ...
        return error_response(conn, exc.status, exc.error, exc.description, headers=exc.resource_headers())
    refusal = bearer_refusal(exc, lambda **params: _token_challenge(conn, **params))
    if refusal is not None:
        status, challenge = refusal
        return error_response(conn, status, exc.code, str(exc), headers={"WWW-Authenticate": challenge})  # type: ignore[attr-defined]
    answer = error_answer(
        exc,
        path=conn.url.path,
        wants_json=wants_json(conn),
        log=log,
        token_challenge=lambda **params: _token_challenge(conn, **params),
    )
    return error_response(conn, answer.status, answer.code, answer.message, headers=answer.headers)


def exception_response(conn: HTTPConnection, exc: BaseException) -> Response:
    """The answer for any exception a view or the middleware raised."""
    if isinstance(exc, SignInFirst):
        return RedirectResponse(exc.location, status_code=303)
    if isinstance(exc, SessionwardError):
        return _sessionward_error(conn, exc)
    if isinstance(exc, HTTPException):
        code, message = http_error(exc.status_code)
        if exc.detail and exc.detail != HTTPStatus(exc.status_code).phrase:
            message = exc.detail
        kept = {k: v for k, v in (exc.headers or {}).items() if k.lower() in ("allow", "retry-after")}
        return error_response(conn, exc.status_code, code, message, headers=kept)
    with contextlib.suppress(ImportError):
        from fastapi.exceptions import RequestValidationError

        if isinstance(exc, RequestValidationError):
            return error_response(conn, 422, "validation_failed", _validation_message(exc))
    log.error("unhandled error on %s %s", conn.scope.get("method"), log_safe(conn.url.path), exc_info=exc)
    return error_response(conn, 500, "internal_error", "Something went wrong on our side.")


def _validation_message(exc: object) -> str:
    errors: list[dict[str, Any]] = getattr(exc, "errors", list)()
    if not errors:
        return "The request is not acceptable."
    first = errors[0]
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
    return f"Field {where!r}: {first.get('msg', 'invalid')}." if where else "The request is not acceptable."
