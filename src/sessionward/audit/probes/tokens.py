"""Tokens: forged tokens the protected route must refuse, offline checks of a captured token, and a token's
life: reusable refresh tokens, tokens that outlive logout. Forging is `audit.forge`, shared with the tests."""

from __future__ import annotations

import json
import time
from http import HTTPStatus
from typing import Any

from .. import forge
from ..context import Context, evidence
from ..http import Response
from ..model import Finding, check
from . import Skip, probe

ALG_NONE = check("token-alg-none", "Unsigned token (alg: none) accepted", "critical",
                 "ASVS 5.0 9.1.2; RFC 8725 3.1", "Verify with an explicit allow-list of algorithms that excludes none.")
SIGNATURE = check("token-signature", "Token with a stripped or null signature accepted", "critical",
                  "ASVS 5.0 9.1.1; RFC 7515 5.2", "Always verify the signature; never decode without verification.")
TAMPERED = check("token-tampered", "Token with changed claims and the old signature accepted", "critical",
                 "ASVS 5.0 9.1.1", "Verify the signature over the exact header and payload received.")
KEY_CONFUSION = check("token-key-confusion", "HMAC token signed with the server's public key accepted", "critical",
                      "ASVS 5.0 9.1.2; RFC 8725 3.1; CVE-2022-29217",
                      "Bind each key to one algorithm; never let the token's alg choose how a key is used.")
EMBEDDED = check("token-embedded-key", "Token signed with a key it carries itself (jwk / jku / x5u) accepted",
                 "critical", "ASVS 5.0 9.1.3; RFC 8725 3.10; CVE-2018-0114",
                 "Take keys only from your own key set; refuse jwk/jku/x5u/x5c headers.")
KID = check("token-kid-injection", "kid header injection (path / SQL) accepted", "critical",
            "ASVS 5.0 9.1.3; RFC 8725 3.10", "Look kid up in a fixed key set; never use it as a path or in SQL.")
WEAK_SECRET = check("token-weak-secret", "Token signed with a guessable HMAC secret", "critical",
                    "ASVS 5.0 9.1.2; ASVS 5.0 11.2.3; RFC 8725 3.5",
                    "Use a random 256-bit key (secrets.token_bytes(32)) from configuration, or an asymmetric key.")
EXPIRY = check("token-expiry", "Expired or not-yet-valid token accepted", "high",
               "ASVS 5.0 9.2.1; RFC 7519 4.1.4-5", "Check exp and nbf on every request (with little leeway).")
LIFETIME = check("token-lifetime", "Access token lives longer than a day (or never expires)", "medium",
                 "ASVS 5.0 7.3.2; RFC 8725 3.10", "Issue short access tokens (minutes) and refresh them.")
CLAIMS = check("token-claims", "Token without typ, aud or iss", "low",
               "ASVS 5.0 9.2.2-9.2.4; RFC 8725 3.8, 3.9, 3.11; RFC 9068 2.1",
               "Issue tokens with typ (at+jwt), iss and aud, and check them on verification.")
REFRESH_REUSE = check("token-refresh-reuse", "Refresh token still usable after rotation", "high",
                      "RFC 9700 4.14.2; ASVS 5.0 10.4.8",
                      "Rotate refresh tokens and revoke the whole family when an old one comes back.")
NO_REVOCATION = check("token-no-revocation", "Token still works after logout (no server-side revocation)", "high",
                      "ASVS 5.0 7.4.1; RFC 7009",
                      "Record logout on the server (deny the jti / end the token family) and check it.")

DAY = 24 * 3600
CONVENTIONAL_LOGOUTS = ("/logout", "/api/logout", "/auth/logout")
NO_ROUTE = (HTTPStatus.NOT_FOUND, HTTPStatus.METHOD_NOT_ALLOWED)  # answers of a logout route that is not there


def _token(ctx: Context) -> dict[str, str]:
    if not (ctx.target.json_login and ctx.target.token_protected):
        raise Skip("needs --json-login and a protected API route (--api-protected or --protected)")
    tokens = ctx.token_login()
    ok, resp = ctx.token_works(tokens["access"])
    if not ok:
        raise Skip(f"the fresh token itself does not open {ctx.target.token_protected} ({resp.status})")
    return tokens


def _accepted(ctx: Context, forged: str) -> tuple[bool, Response]:
    return ctx.token_works(forged)


def _public_keys(ctx: Context, header: dict[str, Any]) -> list[tuple[Any, dict[str, Any] | None]]:
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    if ctx.target.public_key_pem:
        return [(load_pem_public_key(ctx.target.public_key_pem), None)]
    resp = ctx.browser().get(ctx.target.jwks or "/.well-known/jwks.json")
    try:
        document = resp.json() if resp.status == HTTPStatus.OK else {}
    except ValueError:
        document = {}
    listed = document.get("keys") if isinstance(document, dict) else None
    keys = [k for k in listed if isinstance(k, dict)] if isinstance(listed, list) else []
    kid = header.get("kid")
    chosen = [k for k in keys if k.get("kid") == kid] or keys[:1]
    out: list[tuple[Any, dict[str, Any] | None]] = []
    for jwk in chosen:
        try:
            out.append((forge.public_key_from_jwk(jwk), jwk))
        except (ValueError, KeyError, TypeError):
            continue
    return out


@probe("token-forgery", ALG_NONE, SIGNATURE, TAMPERED, KEY_CONFUSION, EMBEDDED, KID, budget=22, order=80)
def forged_tokens(ctx: Context) -> list[Finding]:
    tokens = _token(ctx)
    good = tokens["access"]
    header, payload, sig = forge.parts(good)
    found: dict[str, Finding] = {}

    def attempt(c: Any, forged: str, note: str) -> None:
        if c.id in found:
            return
        ok, resp = _accepted(ctx, forged)
        if ok:
            found[c.id] = Finding(c, evidence(resp, note=note))

    for alg in forge.ALG_NONE_SPELLINGS:
        attempt(ALG_NONE, forge.alg_none(good, alg), f'header {{"alg": "{alg}"}}, empty signature')
    attempt(SIGNATURE, forge.with_signature(good, b""), "the real token with its signature removed")
    attempt(SIGNATURE, forge.with_signature(good, bytes(len(sig) or 32)), "the real token with an all-zero signature")
    changed = {"sub": f"{payload.get('sub', '')}-sw-audit"} if "sub" in payload else {"sw_audit": True}
    attempt(TAMPERED, forge.with_signature(good, sig, **changed),
            f"claims changed ({', '.join(changed)}), old signature kept")
    if not str(header.get("alg", "")).startswith("HS"):
        for key, jwk in _public_keys(ctx, header)[:1]:
            for form, text in forge.public_key_texts(key, jwk).items():
                if form != "ssh":
                    attempt(KEY_CONFUSION, forge.hmac_signed(good, text), f"HS256 keyed with the public key ({form})")
    for param in ("jwk", "jku", "x5u"):
        attempt(EMBEDDED, forge.embedded_key(good, param), f"signed with an attacker key named by its {param} header")
    attempt(KID, forge.hmac_signed(good, b"", header={**header, "kid": "../../../../../../dev/null"}),
            "kid ../../dev/null, HS256 keyed with the empty file")
    attempt(KID, forge.hmac_signed(good, b"sw-audit", header={**header, "kid": "x' UNION SELECT 'sw-audit' -- "}),
            "kid with SQL injection, HS256 keyed with the injected value")
    return list(found.values())


@probe("token-claims", WEAK_SECRET, EXPIRY, LIFETIME, CLAIMS, budget=5, order=81)
def token_claims(ctx: Context) -> list[Finding]:
    tokens = _token(ctx)
    good = tokens["access"]
    header, payload, _ = forge.parts(good)
    shown = "  header " + json.dumps(header, separators=(",", ":")) + f"; claims {sorted(payload)}"
    out: list[Finding] = []
    secret = forge.crack_hmac(good, forge.weak_secrets())
    if secret is not None:
        cracked = (f"  the signature verifies with the secret {secret[:2]}… from the shipped list "
                   f"({len(secret)} characters), offline")
        out.append(Finding(WEAK_SECRET, [shown, cracked]))
        now = int(time.time())
        alg = str(header["alg"])
        expired: tuple[tuple[str, dict[str, Any]], ...] = (
            ("exp an hour ago", {"exp": now - 3600, "iat": now - 7200}),
            ("nbf an hour ahead", {"nbf": now + 3600, "iat": now}),
        )
        for note, changes in expired:
            forged = forge.resign(good, secret.encode(), alg=alg, **changes)
            ok, resp = ctx.token_works(forged)
            if ok:
                out.append(Finding(EXPIRY, evidence(resp, note=f"re-signed with the cracked secret, {note}")))
                break
    exp, iat = payload.get("exp"), payload.get("iat", time.time())
    if not isinstance(exp, (int, float)):
        out.append(Finding(LIFETIME, [shown], "no exp claim: the token never expires"))
    elif exp - float(iat) > DAY:
        out.append(Finding(LIFETIME, [shown], f"lifetime {(exp - float(iat)) / 3600:.0f} hours"))
    missing = [n for n, where in (("typ", header), ("aud", payload), ("iss", payload)) if n not in where]
    if missing:
        out.append(Finding(CLAIMS, [shown], "missing: " + ", ".join(missing)))
    return out


@probe("token-life", REFRESH_REUSE, NO_REVOCATION, budget=12, order=82)
def token_life(ctx: Context) -> list[Finding]:
    t = ctx.target
    tokens = _token(ctx)
    out: list[Finding] = []
    if t.refresh and "refresh" in tokens:
        b = ctx.browser()
        field = tokens["refresh_field"]
        first = b.post(t.refresh, json_body={field: tokens["refresh"]})
        if first.is_success:
            again = b.post(t.refresh, json_body={field: tokens["refresh"]})
            if again.is_success:
                out.append(Finding(REFRESH_REUSE, evidence(first, note="first use (rotation)") +
                                   evidence(again, note="the same refresh token again: accepted")))
    tokens = ctx.token_login()
    access = tokens["access"]
    configured = t.api_logout or t.logout
    logout_paths = [configured] if configured else list(CONVENTIONAL_LOGOUTS)
    tried: list[Response] = []
    for path in logout_paths:
        resp = ctx.browser().post(path, bearer=access, json_body={tokens["refresh_field"]: tokens["refresh"]}
                                  if "refresh" in tokens else {})
        tried.append(resp)
        if resp.status not in NO_ROUTE:
            break
    ok, after = ctx.token_works(access)
    if ok:
        if all(r.status in NO_ROUTE for r in tried):
            note = "no logout route answers: nothing can end a token before it expires"
        else:
            note = "the access token captured before logout still works"
        lines = [line for r in tried for line in evidence(r)]
        out.append(Finding(NO_REVOCATION, lines + evidence(after, note=note)))
    return out
