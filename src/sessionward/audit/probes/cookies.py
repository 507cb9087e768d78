"""Session cookie attributes, session id randomness over a sample, and a new id at login (no fixation)."""

from __future__ import annotations

import math
import secrets
import time

from ..context import Context, evidence
from ..http import SetCookie
from ..model import Finding, check
from . import Skip, probe

HTTPONLY = check("cookie-httponly", "Session cookie readable by JavaScript (no HttpOnly)", "medium",
                 "ASVS 5.0 3.3.4; RFC 6265 5.2.6", "Set the session cookie with HttpOnly.")
SECURE = check("cookie-secure", "Session cookie may travel over plain HTTP (no Secure)", "medium",
               "ASVS 5.0 3.3.1; RFC 6265 5.2.5", "Set the session cookie with Secure (and serve only HTTPS).")
SAMESITE = check("cookie-samesite", "Session cookie without SameSite=Lax or Strict", "low",
                 "ASVS 5.0 3.3.2; RFC 6265bis 5.4.7", "Set SameSite=Lax (or Strict) on the session cookie.")
PREFIX = check("cookie-prefix", "Session cookie without the __Host- (or __Secure-) prefix", "low",
               "ASVS 5.0 3.3.3; RFC 6265bis 4.1.3", "Name the cookie __Host-session (Secure, Path=/, no Domain).")
SCOPE = check("cookie-scope", "Session cookie scoped to a whole domain or a sub-path", "low",
              "ASVS 5.0 3.3.3; RFC 6265bis 5.6",
              "Set no Domain attribute and Path=/ (the __Host- prefix enforces both).")
LIFETIME = check("cookie-lifetime", "Session cookie lives longer than a day", "low",
                 "ASVS 5.0 7.3.2",
                 "Keep the cookie's Max-Age at or below the session's absolute lifetime (hours, not days).")
ENTROPY = check("session-id-entropy", "Session identifiers are short, repeated or predictable", "high",
                "ASVS 5.0 7.2.3", "Issue session ids from a CSPRNG with at least 128 bits (secrets.token_urlsafe(32)).")
FIXATION = check("session-fixation", "A session id planted before login survives the login", "high",
                 "ASVS 5.0 7.2.4", "Issue a new session id at login and never adopt an id the client brought.")

CLIENT_SIDE = check("session-client-side", "Session state kept in a signed cookie (client-side session)", "info",
                    "ASVS 5.0 7.4.1; OWASP Session Management Cheat Sheet",
                    "Keep sessions on the server (an opaque random id in the cookie) so that logout and revocation "
                    "work.")

DAY = 24 * 3600
MIN_ID_BITS = 128  # ASVS 5.0 7.2.3
MIN_ID_SAMPLES = 2  # varying bits need at least two ids to compare


def client_side_payload(value: str) -> dict[str, object] | None:
    """The JSON object a signed-cookie session carries in clear (Flask/itsdangerous `payload.ts.sig`, or a
    JWT), else None. Such a value is not a random id: its randomness is not the question, revocation is."""
    import json
    import zlib

    from ..forge import unb64u

    text = value.strip('"')
    compressed = text.startswith(".")
    first = text.lstrip(".").split(".", 1)[0]
    try:
        raw = unb64u(first)
        if compressed:
            raw = zlib.decompress(raw)
        data = json.loads(raw)
    except (ValueError, zlib.error, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _need_session(ctx: Context) -> None:
    if not (ctx.target.form_login and ctx.target.protected):
        raise Skip("needs --form-login and --protected")


@probe("cookies", HTTPONLY, SECURE, SAMESITE, PREFIX, SCOPE, LIFETIME, budget=5, order=20)
def cookie_attributes(ctx: Context) -> list[Finding]:
    _need_session(ctx)
    b, resp = ctx.form_login()
    if not ctx.authenticated(b):
        raise Skip("the login did not work")
    set_now = {c.name: c for c in resp.set_cookies if not c.deletes}
    ctx.login_cookies, ctx.session_cookies = set_now, list(set_now)
    name = ctx.session_cookie()
    if name is None:
        raise Skip("the login set no cookie (token-only app?)")
    c = set_now[name]
    ev = evidence(resp, show=("Set-Cookie",))
    out: list[Finding] = []
    if not c.has("httponly"):
        out.append(Finding(HTTPONLY, ev))
    if not c.has("secure"):
        out.append(Finding(SECURE, ev))
    if (c.get("samesite") or "").lower() not in ("lax", "strict"):
        out.append(Finding(SAMESITE, ev))
    if not name.startswith(("__Host-", "__Secure-")):
        out.append(Finding(PREFIX, ev, f"cookie {name!r}"))
    if c.has("domain") or (c.get("path") or "/") != "/":
        out.append(Finding(SCOPE, ev))
    if _lifetime(c) > DAY:
        out.append(Finding(LIFETIME, ev, f"about {_lifetime(c) / 3600:.0f} hours"))
    return out


def _lifetime(c: SetCookie) -> float:
    from email.utils import parsedate_to_datetime

    max_age = c.get("max-age")
    if max_age is not None:
        try:
            return float(max_age)
        except ValueError:
            return 0.0
    expires = c.get("expires")
    if expires:
        try:
            return parsedate_to_datetime(expires).timestamp() - time.time()
        except (TypeError, ValueError):
            return 0.0
    return 0.0  # a browser-session cookie


def estimated_bits(values: list[str]) -> float:
    """Bits in the part that varies between samples: its shortest length times log2 of the alphabet seen."""
    if len(set(values)) < len(values):
        return 0.0
    prefix = 0
    while all(len(v) > prefix for v in values) and len({v[prefix] for v in values}) == 1:
        prefix += 1
    suffix = 0
    while all(len(v) - suffix > prefix for v in values) and len({v[-1 - suffix] for v in values}) == 1:
        suffix += 1
    varying = [v[prefix: len(v) - suffix] for v in values]
    chars = set("".join(varying))
    if chars <= set("0123456789"):
        alphabet = 10
    elif chars <= set("0123456789abcdef") or chars <= set("0123456789ABCDEF"):
        alphabet = 16
    elif chars <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/=.%"):
        alphabet = 64
    else:
        alphabet = 94
    return min(len(v) for v in varying) * math.log2(alphabet)


@probe("session-ids", ENTROPY, FIXATION, CLIENT_SIDE, budget=lambda ctx: 3 * ctx.target.id_samples + 4, order=21)
def session_ids(ctx: Context) -> list[Finding]:
    _need_session(ctx)
    out: list[Finding] = []
    # fixation: plant a made-up id (and keep any pre-login cookie the server handed out), then log in
    b, resp = ctx.form_login()
    if not ctx.authenticated(b):
        raise Skip("the login did not work")
    name = ctx.session_cookie() or next((c.name for c in resp.set_cookies if not c.deletes), None)
    if name is None:
        raise Skip("the login set no cookie")
    planted = "sw-audit-planted-" + secrets.token_hex(16)
    p = ctx.browser({name: planted})
    _, presp = ctx.form_login(p)
    if p.cookies.get(name) == planted and ctx.authenticated(p):
        out.append(Finding(FIXATION, evidence(presp, show=("Set-Cookie",),
                                              note=f"{name} kept the planted value and the session works with it")))
    # randomness over a sample of logins
    values = [b.cookies.get(name, ""), p.cookies.get(name, "")]
    for _ in range(max(0, ctx.target.id_samples - 2)):
        s, _ = ctx.form_login()
        values.append(s.cookies.get(name, ""))
    values = [v for v in values if v and v != planted]
    carried = client_side_payload(values[0]) if values else None
    if carried is not None:
        out.append(Finding(CLIENT_SIDE, [f"  {name} carries {sorted(carried)} in clear, signed, not a random id"]))
    elif len(values) >= MIN_ID_SAMPLES:
        bits = estimated_bits(values)
        if bits < MIN_ID_BITS:
            if bits == 0:
                why = "the same id came back twice"
            else:
                why = f"about {bits:.0f} bits vary between {len(values)} logins"
            shown = ", ".join(f"{v[:6]}…({len(v)} chars)" for v in values)
            out.append(Finding(ENTROPY, [f"  {name} values: {shown}"], why))
    return out
