"""CSRF: an unsafe request with the session cookie but without the token, or with it from a foreign site, is
accepted; the login form has no anti-CSRF token (login CSRF)."""

from __future__ import annotations

from http import HTTPStatus
from urllib.parse import urlsplit

from ..context import Context, FormSpec, csrf_fields, evidence, parse_forms
from ..http import Browser, Response
from ..model import Finding, check
from . import Skip, probe

MISSING = check("csrf-missing-token", "State-changing request accepted without an anti-CSRF token", "medium",
                "ASVS 5.0 3.5.1", "Require a session-bound CSRF token on every unsafe request (and check Origin).")
CROSS_SITE = check("csrf-cross-site",
                   "State-changing request accepted from a foreign Origin / Sec-Fetch-Site: cross-site",
                   "medium", "ASVS 5.0 3.5.1; Fetch Metadata",
                   "Refuse unsafe requests whose Sec-Fetch-Site is cross-site or whose Origin is not yours.")
LOGIN = check("csrf-login", "Login form without an anti-CSRF token (login CSRF)", "medium",
              "ASVS 5.0 3.5.1; OWASP CSRF Cheat Sheet (login CSRF)",
              "Put a pre-session CSRF token in the login form and check it (or check Origin / Sec-Fetch-Site).")

ATTACKER = "https://attacker.invalid"


def unsafe_target(ctx: Context) -> str | None:
    """The state-changing route to try: --unsafe, else the logout route unless it is a GET."""
    if ctx.target.unsafe:
        return ctx.target.unsafe
    if ctx.target.logout and (ctx.target.logout_method or "POST").upper() != "GET":
        return ctx.target.logout
    return None


def form_for(html: str, path: str) -> FormSpec | None:
    want = urlsplit(path).path
    return next((f for f in parse_forms(html) if f.action and urlsplit(f.action).path == want), None)


def accepted(ctx: Context, b: Browser, path: str, resp: Response) -> bool:
    if path == ctx.target.logout:
        return not resp.is_error and not ctx.authenticated(b)
    if resp.is_error:
        return False
    loc = resp.location or ""
    return not (ctx.target.form_login and urlsplit(loc).path == urlsplit(ctx.target.form_login).path)


@probe("csrf", MISSING, CROSS_SITE, budget=14, order=40)
def unsafe_requests(ctx: Context) -> list[Finding]:
    if not (ctx.target.form_login and ctx.target.protected):
        raise Skip("needs --form-login and --protected")
    path = unsafe_target(ctx)
    if path is None:
        raise Skip("no state-changing route to try: give --unsafe PATH (or a POST --logout)")
    b = ctx.login()
    resp = b.post(path, form={}, headers={"Origin": ctx.client.origin, "Sec-Fetch-Site": "same-origin"})
    if resp.status == HTTPStatus.METHOD_NOT_ALLOWED:
        raise Skip(f"POST {path} answered 405: no state-changing POST route to try (give --unsafe PATH)")
    if accepted(ctx, b, path, resp):
        return [Finding(MISSING, evidence(resp, note="no token was sent, and the request took effect"))]
    b = ctx.login()
    page = b.get(ctx.target.protected)
    form = form_for(page.text, path)
    if form is None:
        raise Skip(f"no form posting to {path} on {ctx.target.protected} to take a token from")
    resp = b.post(path, form=form.fields(), headers={"Origin": ATTACKER, "Sec-Fetch-Site": "cross-site"})
    if accepted(ctx, b, path, resp):
        note = "sent from a foreign site (with the page's token), and it took effect"
        return [Finding(CROSS_SITE, evidence(resp, note=note))]
    return []


@probe("login-csrf", LOGIN, budget=5, order=41)
def login_form_token(ctx: Context) -> list[Finding]:
    if not ctx.target.form_login:
        raise Skip("needs --form-login")
    b = ctx.browser()
    page, form = ctx.fetch_login_form(b)
    tokens = csrf_fields(form)
    if not tokens:
        fields = ", ".join(f"{i['name']}({i['type']})" for i in form.inputs if i.get("name")) or "none"
        return [Finding(LOGIN, evidence(page, note=f"login form fields: {fields}; none is an anti-CSRF token"))]
    if not ctx.target.protected:
        return []
    b, resp = ctx.form_login(drop=tuple(tokens), extra={})
    if ctx.authenticated(b):
        return [Finding(LOGIN, evidence(resp, note=f"the login worked without {', '.join(tokens)}"))]
    return []
