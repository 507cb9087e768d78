"""One error shape for the whole service: JSON `{"error": {"code", "message"}}` for API clients, a plain page
for browsers. Never a traceback, never a secret; unexpected errors are logged and answered 500 with a generic text."""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify, render_template_string, request
from werkzeug.exceptions import HTTPException

from ..exceptions import SessionwardError
from ..httpshape import ERROR_PAGE, REALM, STORE_RETRY_AFTER, TITLES, bearer_challenge, error_answer, status_for
from ..text import log_safe
from ..web.dpop import www_authenticate
from .context import request_state, state

__all__ = ["REALM", "STORE_RETRY_AFTER", "bearer_challenge", "error_response", "register_error_handlers",
           "status_for", "token_challenge", "wants_json"]

log = logging.getLogger("sessionward.flask")

_PAGE = ERROR_PAGE
_TITLES = TITLES


def wants_json() -> bool:
    if request.path.startswith("/api/") or request.is_json:
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json"


def error_response(status: int, code: str, message: str, *, headers: dict[str, str] | None = None) -> Response:
    if wants_json():
        response = jsonify({"error": {"code": code, "message": message}})
    else:
        title = _TITLES.get(status, "Error")
        page = render_template_string(_PAGE, status=status, title=title, message=message)
        response = Response(page, mimetype="text/html")
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def token_challenge(**params: str) -> str:
    """The `WWW-Authenticate` value of a token refusal in this request (`sessionward.web.dpop.www_authenticate`):
    the scheme(s) the token check chose for it (RFC 9449 7.1, 7.2); RFC 6750 `Bearer` outside token checks."""
    return www_authenticate(state().dpop, request_state().challenge, **params)


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(SessionwardError)
    def _sessionward_error(exc: SessionwardError) -> Response:
        answer = error_answer(exc, path=request.path, wants_json=wants_json(), log=log, token_challenge=token_challenge)
        return error_response(answer.status, answer.code, answer.message, headers=answer.headers)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        code = (exc.name or "error").lower().replace(" ", "_")
        headers = {k: v for k, v in exc.get_headers() if k.lower() in ("allow", "retry-after")}
        return error_response(status, code, exc.description or exc.name or "Error", headers=headers)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, log_safe(request.path))
        return error_response(500, "internal_error", "Something went wrong on our side.")
