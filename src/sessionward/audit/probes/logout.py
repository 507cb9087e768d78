"""Logout: a GET logs out (any site can log the user out), and above all the cookie captured before logout
still works after it (no server-side invalidation)."""

from __future__ import annotations

from ..context import Context, evidence
from ..model import Finding, check
from . import Skip, probe
from .csrf import form_for

BY_GET = check("logout-get", "Logout by GET: any site can log the user out (cross-site logout)", "low",
               "ASVS 5.0 3.5.3", "Accept logout only as POST with the CSRF token.")
REPLAY = check("logout-replay", "The session cookie still works after logout (no server-side invalidation)", "high",
               "ASVS 5.0 7.4.1", "End the session on the server at logout (delete the record), not only the cookie.")


@probe("logout", BY_GET, REPLAY, budget=16, order=50)
def logout(ctx: Context) -> list[Finding]:
    t = ctx.target
    if not (t.form_login and t.protected and t.logout):
        raise Skip("needs --form-login, --protected and --logout")
    out: list[Finding] = []
    method = (t.logout_method or "").upper()
    if method in ("", "GET"):
        b = ctx.login()
        as_image = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Dest": "image"}
        resp = b.get(t.logout, headers=as_image)
        if not ctx.authenticated(b):
            note = "a cross-site GET (an <img>) ended the session"
            out.append(Finding(BY_GET, evidence(resp, show=("Set-Cookie",), note=note)))
            method = "GET"
        else:
            method = "POST"
    b = ctx.login()
    captured = dict(b.cookies)
    if method == "GET":
        resp = b.get(t.logout)
    else:
        page = b.get(t.protected)
        form = form_for(page.text, t.logout)
        resp = b.post(t.logout, form=form.fields() if form else {}, headers={"Origin": ctx.client.origin})
    if ctx.authenticated(b):
        raise Skip(f"{method} {t.logout} answered {resp.status} and did not log out (give --logout-method?)")
    replay = ctx.browser(captured)
    again = replay.get(t.protected)
    if ctx.works(again, ctx.baseline()):
        out.append(Finding(REPLAY, evidence(resp, show=("Set-Cookie",)) + evidence(
            again, note="the cookie captured before logout still opens the protected page")))
    return out
