"""The web pages of the reference service on ASGI: the very routes, statuses and templates of `web.py`, built
only from the public adapter (`sessionward.asgi`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.responses import HTMLResponse, RedirectResponse, Response

from ..asgi import (
    CurrentSession,
    CurrentUser,
    csrf_exempt,
    csrf_token,
    get_session,
    get_user,
    login_user,
    logout_user,
    replace_session,
    state,
    verify_login_csrf,
)
from ..clock import iso_utc
from ..exceptions import InvalidCredentials, PasswordPolicyError, Throttled
from ..ids import looks_like_public_id
from ..users import User
from .common import form_field, isotime, safe_next, web_session_rows

__all__ = ["router", "templates"]

router = APIRouter(include_in_schema=False)
templates = Environment(
    loader=FileSystemLoader(Path(__file__).with_name("templates")), autoescape=select_autoescape(["html"])
)
templates.filters["isotime"] = isotime
templates.filters["isodatetime"] = iso_utc
templates.globals["url_for"] = lambda endpoint, filename: f"/{endpoint}/{filename}"  # only ever static files


def _see(location: str) -> Response:
    return RedirectResponse(location, status_code=303)


async def _page(request: Request, template: str, status: int = 200, **context: Any) -> Response:
    token = await csrf_token(request)  # every page has a form (login, or the logout button)
    html = templates.get_template(template).render(csrf_token=lambda: token, **context)
    return HTMLResponse(html, status_code=status)


def _field(form: FormData, name: str) -> str:
    value = form.get(name, "")
    return form_field(value if isinstance(value, str) else "", name)


def _value(request: Request, form: FormData | None, name: str) -> str | None:
    """Like werkzeug's `request.values`: the query string first, then the form."""
    value = request.query_params.get(name)
    if value is None and form is not None:
        found = form.get(name)
        value = found if isinstance(found, str) else None
    return value


async def _authenticate(
    request: Request, template: str, username: str, password: str, /, *, purpose: str, wrong: str | None = None,
    **context: Any,
) -> tuple[User | None, Response | None]:
    """The one throttled, logged password check (A7) for a page: the user, or the page again with 429 +
    Retry-After (throttled) or 401 (`wrong`, else the one message for every failure)."""
    client = request.client.host if request.client else ""
    try:
        user = await state(request).authenticator.authenticate(username, password, ip=client, purpose=purpose)
    except Throttled as exc:
        response = await _page(request, template, 429, error=str(exc), **context)
        response.headers["Retry-After"] = str(exc.retry_after)
        return None, response
    except InvalidCredentials as exc:
        return None, await _page(request, template, 401, error=wrong or str(exc), **context)
    return user, None


@router.get("/")
async def index(request: Request) -> Response:
    return _see("/dashboard" if await get_user(request) else "/login")


@router.api_route("/login", methods=["GET", "POST"])
@csrf_exempt  # checked by verify_login_csrf: the form's own pre-session token, even if a session cookie came
async def login(request: Request) -> Response:
    form = await request.form() if request.method == "POST" else None
    next_url = safe_next(_value(request, form, "next"))
    if form is None:
        if await get_user(request) is not None:
            return _see(next_url)
        return await _page(request, "login.html", next=next_url)
    verify_login_csrf(request)
    username, password = _field(form, "username"), _field(form, "password")
    user, refused = await _authenticate(request, "login.html", username, password, purpose="login", next=next_url,
                                        username=username)
    if refused is not None:
        return refused
    assert user is not None
    await login_user(request, user)
    return _see(next_url)


@router.get("/dashboard")
async def dashboard(request: Request, user: CurrentUser, session: CurrentSession) -> Response:
    idle_minutes = round(state(request).sessions.policy.idle_timeout / 60)
    return await _page(request, "dashboard.html", user=user, session=session.record, idle_minutes=idle_minutes)


@router.get("/sessions")
async def sessions(request: Request, user: CurrentUser, session: CurrentSession) -> Response:
    records = await state(request).sessions.list_for_user(session.user_id)
    return await _page(request, "sessions.html", user=user, rows=web_session_rows(records, session.id),
                       message=request.query_params.get("done"))


@router.post("/sessions/{session_id}/end")
async def end_session(request: Request, session_id: str, session: CurrentSession) -> Response:
    manager = state(request).sessions
    if session_id == session.id:
        await logout_user(request)
        return _see("/login")
    if not manager.is_recent_auth(session):  # C14: a thief must not lock the owner out one by one
        return _see("/reauth?next=/sessions")
    if not looks_like_public_id(session_id) or not await manager.revoke(session.user_id, session_id):
        raise HTTPException(404, detail="No such session.")
    return _see("/sessions?done=ended")


@router.post("/sessions/end-others")
async def end_other_sessions(request: Request, session: CurrentSession) -> Response:
    manager = state(request).sessions
    if not manager.is_recent_auth(session):
        return _see("/reauth?next=/sessions")
    await manager.revoke_others(session)
    return _see("/sessions?done=others")


@router.post("/logout")
async def logout(request: Request) -> Response:
    await logout_user(request)
    return _see("/login")


@router.api_route("/reauth", methods=["GET", "POST"])
async def reauth(request: Request, user: CurrentUser) -> Response:
    form = await request.form() if request.method == "POST" else None
    next_url = safe_next(_value(request, form, "next"))
    if form is None:
        return await _page(request, "reauth.html", user=user, next=next_url)
    _, refused = await _authenticate(request, "reauth.html", user.username, _field(form, "password"),
                                     purpose="reauth", user=user, next=next_url)
    if refused is not None:
        return refused
    session = await get_session(request)
    assert session is not None
    rotated = await state(request).sessions.rotate(session, reauthenticated=True)
    if rotated is None:
        await logout_user(request)
        return _see("/login")
    replace_session(request, rotated)
    return _see(next_url)


@router.api_route("/password", methods=["GET", "POST"])
async def change_password(request: Request, user: CurrentUser, session: CurrentSession) -> Response:
    st = state(request)
    if not st.sessions.is_recent_auth(session):
        return _see("/reauth?next=/password")
    if request.method == "GET":
        return await _page(request, "password.html", user=user)
    form = await request.form()
    current, new, confirm = (_field(form, n) for n in ("current_password", "new_password", "confirm_password"))
    _, refused = await _authenticate(request, "password.html", user.username, current, purpose="password_change",
                                     wrong="The current password is wrong.", user=user)
    if refused is not None:
        return refused
    if new != confirm:
        return await _page(request, "password.html", 422, user=user, error="The new passwords do not match.")
    try:
        await st.users.set_password(user.id, new)
    except PasswordPolicyError as exc:
        return await _page(request, "password.html", 422, user=user, error=str(exc))
    await st.sessions.revoke_all(user.id)  # every session and token family of the user ends (C6)
    await login_user(request, user)  # this browser continues in a brand-new session
    return _see("/sessions?done=password")
