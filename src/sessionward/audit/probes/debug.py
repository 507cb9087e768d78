"""Debug exposure: requests that make a careless app fail, looking for a traceback or an interactive
debugger."""

from __future__ import annotations

from http import HTTPStatus

from ..context import Context, evidence
from ..http import RequestOptions, Response
from ..model import Finding, check
from . import probe

INTERACTIVE = check("debug-interactive", "Interactive debugger exposed (remote code execution)", "critical",
                    "ASVS 5.0 13.4.2; CWE-489",
                    "Never run with debug=True outside your machine; serve with gunicorn/uwsgi.")
TRACEBACK = check("debug-traceback", "A failing request shows a stack trace", "high",
                  "ASVS 5.0 13.4.2; ASVS 5.0 16.5.1; CWE-209",
                  "Turn debug off and return a generic error page; log the details.")

DEBUGGER_MARKERS = (b"__debugger__", b"Werkzeug Debugger", b"werkzeug.debug", b"console.png", b"EVALEX")
DEBUGGER_STATUSES = (HTTPStatus.OK, HTTPStatus.INTERNAL_SERVER_ERROR)
TRACE_MARKERS = (b"Traceback (most recent call last)", b'class="traceback"', b"django.core.handlers", b"at java.",
                 b"Exception in thread", b"System.Web.HttpException", b"Whoops, looks like something went wrong")


def _attempts(ctx: Context) -> list[tuple[str, str, RequestOptions]]:
    t = ctx.target
    form_type = {"Content-Type": "application/x-www-form-urlencoded"}
    json_type = {"Content-Type": "application/json"}
    tries: list[tuple[str, str, RequestOptions]] = [("GET", "/console", {})]
    if t.form_login:
        tries.append(("POST", t.form_login, {"body": b"", "headers": form_type}))
    if t.json_login:
        tries.append(("POST", t.json_login, {"body": b"[]", "headers": json_type}))
        tries.append(("POST", t.json_login, {"body": b'{"username": {}, "password": []}', "headers": json_type}))
    if t.token_protected:
        tries.append(("GET", t.token_protected, {"headers": {"Authorization": "Bearer not.a.jwt"}}))
    return tries


@probe("debug", INTERACTIVE, TRACEBACK, budget=6, order=10)
def debug_exposure(ctx: Context) -> list[Finding]:
    found: dict[str, Finding] = {}
    for method, path, kw in _attempts(ctx):
        b = ctx.browser()
        resp = b.request(method, path, **kw)
        if any(m in resp.body for m in DEBUGGER_MARKERS) and resp.status in DEBUGGER_STATUSES:
            note = _excerpt(resp, DEBUGGER_MARKERS)
            found.setdefault(INTERACTIVE.id, Finding(INTERACTIVE, evidence(resp, note=note)))
        elif any(m in resp.body for m in TRACE_MARKERS):
            found.setdefault(TRACEBACK.id, Finding(TRACEBACK, evidence(resp, note=_excerpt(resp, TRACE_MARKERS))))
    return list(found.values())


def _excerpt(resp: Response, markers: tuple[bytes, ...]) -> str:
    marker = next(m for m in markers if m in resp.body)
    return f"the body contains {marker.decode()!r}"
