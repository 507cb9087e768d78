"""The DBSC endpoints on Flask: registration and refresh (paths from `SESSIONWARD_DBSC_*_PATH`). Thin: the
protocol is `sessionward.dbsc`, its use with the cookie sessions `sessionward.device_binding`."""

from __future__ import annotations

from flask import Flask, Response, json, request

from ..dbsc import DBSCError, DBSCPolicy, DBSCRefused
from ..device_binding import DeviceAnswer, is_device_bound
from ..sessions import Session
from .context import request_state, session_cookie_value, state

__all__ = ["register_dbsc"]

_NO_STORE = {"Cache-Control": "no-store"}


def register_dbsc(app: Flask, policy: DBSCPolicy) -> None:
    """Add the registration and refresh endpoints (POST, exempt from the CSRF token: each is proven by a
    signature over a challenge bound to the session)."""
    for path, endpoint, view in ((policy.registration_path, "sessionward_dbsc_register", _register),
                                 (policy.refresh_path, "sessionward_dbsc_refresh", _refresh)):
        view._sw_csrf_exempt = True  # type: ignore[attr-defined]
        app.add_url_rule(path, endpoint, view, methods=["POST"])


def _long_session() -> Session | None:
    """The session of the long cookie alone (the short one is what a refresh renews)."""
    value = session_cookie_value()
    return state().sessions.load(value) if value is not None else None


def _register() -> Response:
    binding = state().dbsc
    assert binding is not None  # noqa: S101 - registered only with DBSC on
    try:
        answer = binding.register(_long_session(), request.headers.getlist("Secure-Session-Response"))
    except DBSCError as err:
        return _refused(err)
    return _answer(answer)


def _refresh() -> Response:
    binding = state().dbsc
    assert binding is not None  # noqa: S101 - registered only with DBSC on
    session = _long_session()
    try:
        answer = binding.refresh(session, request.headers.getlist("Sec-Secure-Session-Id"),
                                 request.headers.getlist("Secure-Session-Response"))
    except DBSCRefused as err:
        if session is not None and is_device_bound(session.record):
            request_state().logged_out()  # the server session was ended: expire the long cookie too
        return _refused(err)
    except DBSCError as err:
        return _refused(err)
    return _answer(answer)


def _answer(answer: DeviceAnswer) -> Response:
    body = json.dumps(answer.body) if answer.body is not None else ""
    response = Response(body, status=200, mimetype="application/json" if answer.body is not None else "text/plain",
                        headers={**_NO_STORE, "Secure-Session-Challenge": answer.challenge})
    cookie = answer.cookie
    binding = state().dbsc
    assert binding is not None  # noqa: S101 - registered only with DBSC on
    response.set_cookie(cookie.name, cookie.value, max_age=cookie.max_age, path="/", secure=True, httponly=True,
                        samesite=binding.policy.cookie_samesite)
    return response


def _refused(err: DBSCError) -> Response:
    body = json.dumps({"error": err.code, "message": str(err)})
    return Response(body, status=err.status, mimetype="application/json", headers={**_NO_STORE, **err.headers})
