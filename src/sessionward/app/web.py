"""The web pages of the reference service: the lab's Part 1 done right. Built only from the public API."""

from __future__ import annotations

from flask import Blueprint, Response, abort, redirect, render_template, request

from ..exceptions import InvalidCredentials, PasswordPolicyError, Throttled
from ..flask import (
    csrf_exempt,
    current_session,
    current_user,
    get_session,
    get_user,
    login_required,
    login_user,
    logout_user,
    replace_session,
    state,
    verify_login_csrf,
)
from ..ids import looks_like_public_id
from ..users import User
from .common import form_field, safe_next, web_session_rows

bp = Blueprint("web", __name__)

def _form(name: str) -> str:
    """A form field, checked at the edge (422 for control characters or past MAX_FIELD, O5)."""
    return form_field(request.form.get(name, ""), name)


def _page(template: str, status: int = 200, **context: object) -> Response:
    response = Response(render_template(template, **context), status=status, mimetype="text/html")
    return response


def _authenticate(
    template: str, username: str, password: str, /, *, purpose: str, wrong: str | None = None, **context: object
) -> tuple[User | None, Response | None]:
    """The one throttled, logged password check (A7) for a page, never the hasher directly: the user, or the
    page again with 429 + Retry-After (throttled) or 401 (`wrong`, else the one message for every failure)."""
    try:
        user = state().authenticator.authenticate(username, password, ip=request.remote_addr or "", purpose=purpose)
    except Throttled as exc:
        response = _page(template, 429, error=str(exc), **context)
        response.headers["Retry-After"] = str(exc.retry_after)
        return None, response
    except InvalidCredentials as exc:
        return None, _page(template, 401, error=wrong or str(exc), **context)
    return user, None


@bp.get("/")
def index() -> Response:
    return redirect("/dashboard" if get_user() else "/login", code=303)  # type: ignore[return-value]


@bp.route("/login", methods=["GET", "POST"])
@csrf_exempt  # checked by verify_login_csrf: the form's own pre-session token, even if a session cookie came
def login() -> Response:
    next_url = safe_next(request.values.get("next"))
    if request.method == "GET":
        if get_user() is not None:
            return redirect(next_url, code=303)  # type: ignore[return-value]
        return _page("login.html", next=next_url)
    verify_login_csrf()
    username, password = _form("username"), _form("password")
    user, refused = _authenticate("login.html", username, password, purpose="login", next=next_url, username=username)
    if refused is not None:
        return refused
    assert user is not None
    login_user(user)
    return redirect(next_url, code=303)  # type: ignore[return-value]


@bp.get("/dashboard")
@login_required
def dashboard() -> Response:
    session = current_session
    idle_minutes = round(state().sessions.policy.idle_timeout / 60)
    return _page("dashboard.html", user=current_user, session=session.record,  # type: ignore[union-attr]
                 idle_minutes=idle_minutes)


@bp.get("/sessions")
@login_required
def sessions() -> Response:
    session = get_session()
    assert session is not None
    rows = web_session_rows(state().sessions.list_for_user(session.user_id), session.id)
    return _page("sessions.html", user=current_user, rows=rows, message=request.args.get("done"))


@bp.post("/sessions/<session_id>/end")
@login_required
def end_session(session_id: str) -> Response:
    session = get_session()
    assert session is not None
    if session_id == session.id:
        logout_user()
        return redirect("/login", code=303)  # type: ignore[return-value]
    if not state().sessions.is_recent_auth(session):  # C14: a thief must not lock the owner out one by one
        return redirect("/reauth?next=/sessions", code=303)  # type: ignore[return-value]
    if not looks_like_public_id(session_id) or not state().sessions.revoke(session.user_id, session_id):
        abort(404, description="No such session.")
    return redirect("/sessions?done=ended", code=303)  # type: ignore[return-value]


@bp.post("/sessions/end-others")
@login_required
def end_other_sessions() -> Response:
    session = get_session()
    assert session is not None
    if not state().sessions.is_recent_auth(session):
        return redirect("/reauth?next=/sessions", code=303)  # type: ignore[return-value]
    state().sessions.revoke_others(session)
    return redirect("/sessions?done=others", code=303)  # type: ignore[return-value]


@bp.post("/logout")
def logout() -> Response:
    logout_user()
    return redirect("/login", code=303)  # type: ignore[return-value]


@bp.route("/reauth", methods=["GET", "POST"])
@login_required
def reauth() -> Response:
    next_url = safe_next(request.values.get("next"))
    user = get_user()
    assert user is not None
    if request.method == "GET":
        return _page("reauth.html", user=user, next=next_url)
    _, refused = _authenticate("reauth.html", user.username, _form("password"), purpose="reauth", user=user,
                               next=next_url)
    if refused is not None:
        return refused
    session = get_session()
    assert session is not None
    rotated = state().sessions.rotate(session, reauthenticated=True)
    if rotated is None:
        logout_user()
        return redirect("/login", code=303)  # type: ignore[return-value]
    replace_session(rotated)
    return redirect(next_url, code=303)  # type: ignore[return-value]


@bp.route("/password", methods=["GET", "POST"])
@login_required
def change_password() -> Response:
    st = state()
    session = get_session()
    user = get_user()
    assert session is not None and user is not None
    if not st.sessions.is_recent_auth(session):
        return redirect("/reauth?next=/password", code=303)  # type: ignore[return-value]
    if request.method == "GET":
        return _page("password.html", user=user)
    current, new, confirm = _form("current_password"), _form("new_password"), _form("confirm_password")
    _, refused = _authenticate("password.html", user.username, current, purpose="password_change",
                               wrong="The current password is wrong.", user=user)
    if refused is not None:
        return refused
    if new != confirm:
        return _page("password.html", 422, user=user, error="The new passwords do not match.")
    try:
        st.users.set_password(user.id, new)
    except PasswordPolicyError as exc:
        return _page("password.html", 422, user=user, error=str(exc))
    st.sessions.revoke_all(user.id)  # every session and token family of the user ends (C6)
    login_user(user)  # this browser continues in a brand-new session
    return redirect("/sessions?done=password", code=303)  # type: ignore[return-value]
