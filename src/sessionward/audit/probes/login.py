"""Login: credentials over plain HTTP, open redirect through `next`, user enumeration, no throttling.

Only made-up usernames are hammered; the real account sees at most one wrong password (three with
--aggressive, for timing), and the throttling probe uses it only with --aggressive."""

from __future__ import annotations

import re
import secrets
import statistics
from http import HTTPStatus
from urllib.parse import quote

from ..context import Context, evidence
from ..http import Response
from ..model import Finding, check
from . import Skip, probe

PLAIN_HTTP = check("login-plain-http", "Credentials and session/token sent over plain HTTP", "high",
                   "ASVS 5.0 12.2.1; RFC 6750 5.3", "Serve the whole app over HTTPS only (and send HSTS).")
OPEN_REDIRECT = check("login-open-redirect", "Open redirect after login through a next-style parameter", "medium",
                      "ASVS 5.0 3.7.2; CWE-601",
                      "Redirect only to same-site relative paths; ignore anything with a scheme or host.")
ENUMERATION = check("login-enumeration", "Login answers differ for unknown users (user enumeration)", "medium",
                    "ASVS 5.0 6.3.8",
                    "Answer unknown users and wrong passwords identically (status, body, time: hash a dummy).")
THROTTLE = check("login-throttle", "No throttling after repeated failed logins", "medium",
                 "ASVS 5.0 6.3.1", "Throttle failures per account and per client (backoff, 429 + Retry-After).")

EVIL = "https://attacker.invalid/phish"
NEXT_NAMES = ("next", "redirect", "redirect_to", "return", "returnTo", "return_url", "continue", "url")
# --aggressive timing finds enumeration when the real user's median failed login is this many times slower
# than an unknown user's, and at least this many seconds slower
TIMING_RATIO = 3
TIMING_MIN_GAP = 0.1


def _has_login(ctx: Context) -> bool:
    return bool(ctx.target.form_login or ctx.target.json_login)


@probe("transport", PLAIN_HTTP, budget=3, order=11)
def plain_http(ctx: Context) -> list[Finding]:
    if not _has_login(ctx):
        raise Skip("needs a login recipe")
    if ctx.https:
        return []
    if ctx.target.json_login:
        resp = ctx.json_login()
    else:
        _, resp = ctx.form_login()
    if resp.is_error:
        raise Skip(f"the login answered {resp.status}")
    note = f"password sent to and session/token returned by {ctx.client.origin} unencrypted"
    return [Finding(PLAIN_HTTP, evidence(resp, show=("Content-Type",), note=note))]


@probe("open-redirect", OPEN_REDIRECT, budget=3, order=60)
def open_redirect(ctx: Context) -> list[Finding]:
    t = ctx.target
    if not (t.form_login and t.username):
        raise Skip("needs --form-login and --username")
    b = ctx.browser()
    _, form = ctx.fetch_login_form(b)
    data = ctx.form_fields(form, t.username, t.password)
    for name in NEXT_NAMES:
        if name in data:
            data[name] = EVIL
    action = form.action or t.form_login
    path = f"{action}{'&' if '?' in action else '?'}next={quote(EVIL, safe='')}"
    resp = b.post(path, form=data, headers={"Origin": ctx.client.origin})
    loc = resp.location or ""
    if resp.is_redirection and re.match(r"^\s*(https?:)?[/\\]{2}attacker\.invalid", loc, re.I):
        return [Finding(OPEN_REDIRECT, evidence(resp, show=("Location",)))]
    return []


def _normalized(resp: Response, *secrets_: str) -> tuple[int, bytes]:
    body = resp.body
    for s in secrets_:
        if s:
            body = body.replace(s.encode(), b"<x>")
    body = re.sub(rb'value="[^"]*"', b'value=""', body)  # per-request CSRF tokens in hidden fields
    body = re.sub(rb'"(request_id|timestamp|time|trace_id)"\s*:\s*"[^"]*"', b"", body)
    return resp.status, body


def _attempt(ctx: Context, username: str, password: str) -> Response:
    if ctx.target.json_login:
        return ctx.json_login(username=username, password=password)
    return ctx.form_login(username=username, password=password)[1]


@probe("enumeration", ENUMERATION, budget=lambda ctx: 12 if ctx.target.aggressive else 6, order=70)
def enumeration(ctx: Context) -> list[Finding]:
    t = ctx.target
    if not (_has_login(ctx) and t.username and t.password):
        raise Skip("needs a login recipe with a username and a password")
    if t.form_login and not t.json_login:
        b = ctx.browser()
        _, form = ctx.fetch_login_form(b)
        if not form.by_type("password"):
            raise Skip("the login form has no password field")
    rounds = 3 if t.aggressive else 1
    known, unknown = [], []
    for _ in range(rounds):
        wrong = "sw-audit-" + secrets.token_urlsafe(12)
        ghost = "sw-audit-nobody-" + secrets.token_hex(6)
        known.append((_attempt(ctx, t.username, wrong), wrong, t.username))
        unknown.append((_attempt(ctx, ghost, wrong), wrong, ghost))
    k, u = known[0], unknown[0]
    if _normalized(k[0], k[1], k[2]) != _normalized(u[0], u[1], u[2]):
        what = "status" if k[0].status != u[0].status else "body"
        return [Finding(ENUMERATION, evidence(k[0], note="real user, wrong password") +
                        evidence(u[0], note="unknown user"), f"the {what} differs")]
    if t.aggressive:
        kt = statistics.median(r.elapsed for r, _, _ in known)
        ut = statistics.median(r.elapsed for r, _, _ in unknown)
        if kt > TIMING_RATIO * ut and kt - ut > TIMING_MIN_GAP:
            medians = f"  median {kt * 1000:.0f} ms for the real user, {ut * 1000:.0f} ms for unknown ones"
            return [Finding(ENUMERATION, [medians], "the time differs")]
    return []


def _throttled(resp: Response) -> bool:
    return resp.status == HTTPStatus.TOO_MANY_REQUESTS or resp.header("Retry-After") is not None or bool(
        re.search(rb"too many|try again later|locked|temporarily blocked", resp.body, re.I))


@probe("throttle", THROTTLE, budget=lambda ctx: 2 * ctx.target.throttle_attempts + 2, order=90)
def throttling(ctx: Context) -> list[Finding]:
    t = ctx.target
    if not _has_login(ctx):
        raise Skip("needs a login recipe")
    username = t.username if (t.aggressive and t.username) else "sw-audit-nobody-" + secrets.token_hex(6)
    last: Response | None = None
    for _ in range(t.throttle_attempts):
        last = _attempt(ctx, username, "sw-audit-" + secrets.token_urlsafe(12))
        if _throttled(last):
            return []
    assert last is not None
    who = "the real account (--aggressive)" if username == t.username else "one made-up username"
    return [Finding(THROTTLE, evidence(last, note=f"{t.throttle_attempts} failed logins in a row for {who}: "
                                                  "no 429, no Retry-After, no lock-out message"))]
