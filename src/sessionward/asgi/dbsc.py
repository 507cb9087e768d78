"""The DBSC endpoints on Starlette/FastAPI: registration and refresh (paths from `SESSIONWARD_DBSC_*_PATH`).
Thin: the protocol is `sessionward.dbsc`, its use with the cookie sessions `sessionward.aio.device_binding`."""

from __future__ import annotations

import json
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from ..aio.device_binding import DeviceAnswer, is_device_bound
from ..dbsc import DBSCError, DBSCPolicy, DBSCRefused
from .context import context, session_cookie_value, state
from .middleware import csrf_exempt

__all__ = ["add_dbsc_routes"]

_NO_STORE = {"Cache-Control": "no-store"}


def add_dbsc_routes(app: Starlette, policy: DBSCPolicy) -> None:
    """Add the registration and refresh endpoints (POST, exempt from the CSRF token: each is proven by a
    signature over a challenge bound to the session). Not part of the JSON API's OpenAPI document."""
    app.router.add_route(policy.registration_path, csrf_exempt(_register), methods=["POST"],
                         include_in_schema=False)
    app.router.add_route(policy.refresh_path, csrf_exempt(_refresh), methods=["POST"], include_in_schema=False)


async def _long_session(request: Request) -> Any:
    """The session of the long cookie alone (the short one is what a refresh renews)."""
    value = session_cookie_value(request)
    return await state(request).sessions.load(value) if value is not None else None


async def _register(request: Request) -> Response:
    binding = state(request).dbsc
    try:
        answer = await binding.register(await _long_session(request),
                                        request.headers.getlist("secure-session-response"))
    except DBSCError as err:
        return _refused(err)
    return _answer(request, answer)


async def _refresh(request: Request) -> Response:
    binding = state(request).dbsc
    session = await _long_session(request)
    try:
        answer = await binding.refresh(session, request.headers.getlist("sec-secure-session-id"),
                                       request.headers.getlist("secure-session-response"))
    except DBSCRefused as err:
        if session is not None and is_device_bound(session.record):
            context(request).logged_out()  # the server session was ended: expire the long cookie too
        return _refused(err)
    except DBSCError as err:
        return _refused(err)
    return _answer(request, answer)


def _answer(request: Request, answer: DeviceAnswer) -> Response:
    body = json.dumps(answer.body) if answer.body is not None else ""
    response = Response(body, status_code=200,
                        media_type="application/json" if answer.body is not None else "text/plain",
                        headers={**_NO_STORE, "Secure-Session-Challenge": answer.challenge})
    cookie = answer.cookie
    samesite: Any = state(request).dbsc.policy.cookie_samesite.lower()
    response.set_cookie(cookie.name, cookie.value, max_age=cookie.max_age, path="/", secure=True, httponly=True,
                        samesite=samesite)
    return response


def _refused(err: DBSCError) -> Response:
    body = json.dumps({"error": err.code, "message": str(err)})
    return Response(body, status_code=err.status, media_type="application/json", headers={**_NO_STORE, **err.headers})
