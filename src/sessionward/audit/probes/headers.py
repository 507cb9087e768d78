"""Security headers on an authenticated answer: CSP, HSTS, framing, nosniff, Referrer-Policy, no-store."""

from __future__ import annotations

from ..context import Context, evidence
from ..http import Response
from ..model import Finding, check
from . import Skip, probe

CSP = check("headers-csp", "No Content-Security-Policy on an authenticated page", "medium",
            "ASVS 5.0 3.4.3",
            "Send a Content-Security-Policy (at least default-src 'self'; object-src 'none'; base-uri 'none').")
HSTS = check("headers-hsts", "No Strict-Transport-Security", "medium",
             "ASVS 5.0 3.4.1; RFC 6797", "Send Strict-Transport-Security: max-age=63072000; includeSubDomains.")
FRAMING = check("headers-framing", "Authenticated page can be framed (no frame-ancestors / X-Frame-Options)", "medium",
                "ASVS 5.0 3.4.6", "Send CSP frame-ancestors 'none' (and X-Frame-Options: DENY for old browsers).")
NOSNIFF = check("headers-nosniff", "No X-Content-Type-Options: nosniff", "low",
                "ASVS 5.0 3.4.4", "Send X-Content-Type-Options: nosniff.")
REFERRER = check("headers-referrer", "No Referrer-Policy", "low",
                 "ASVS 5.0 3.4.5", "Send Referrer-Policy: no-referrer (or strict-origin-when-cross-origin).")
CACHE = check("headers-cache", "Authenticated answer may be cached (no Cache-Control: no-store)", "medium",
              "ASVS 5.0 14.3.2; RFC 9111 5.2.2.5", "Send Cache-Control: no-store on every authenticated answer.")


def _authenticated_answer(ctx: Context) -> Response:
    t = ctx.target
    if t.form_login and t.protected:
        b = ctx.login()
        return b.get(t.protected)
    if t.json_login and t.token_protected:
        return ctx.token_request(ctx.token_login()["access"])
    raise Skip("needs a login recipe and --protected")


@probe("headers", CSP, HSTS, FRAMING, NOSNIFF, REFERRER, CACHE, budget=5, order=30)
def security_headers(ctx: Context) -> list[Finding]:
    resp = _authenticated_answer(ctx)
    if not resp.is_success:
        raise Skip(f"the protected route answered {resp.status}")

    def ev(*names: str) -> list[str]:
        return evidence(resp, show=("Content-Type", *names))

    html = "html" in (resp.header("Content-Type") or "").lower()
    csp = (resp.header("Content-Security-Policy") or "").lower()
    out: list[Finding] = []
    if html and not csp:
        out.append(Finding(CSP, ev("Content-Security-Policy")))
    if ctx.https and not resp.header("Strict-Transport-Security"):
        out.append(Finding(HSTS, ev("Strict-Transport-Security")))
    frame_options = (resp.header("X-Frame-Options") or "").upper()
    if html and "frame-ancestors" not in csp and frame_options not in ("DENY", "SAMEORIGIN"):
        out.append(Finding(FRAMING, ev("Content-Security-Policy", "X-Frame-Options")))
    if (resp.header("X-Content-Type-Options") or "").lower() != "nosniff":
        out.append(Finding(NOSNIFF, ev("X-Content-Type-Options")))
    if html and not resp.header("Referrer-Policy"):
        out.append(Finding(REFERRER, ev("Referrer-Policy")))
    if "no-store" not in (resp.header("Cache-Control") or "").lower():
        out.append(Finding(CACHE, ev("Cache-Control")))
    return out
