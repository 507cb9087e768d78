"""DELIBERATELY INSECURE: a catalogue of session-management mistakes, one per URL prefix, so that each of
`sessionward audit`'s checks is shown to fire on the mistake it names (and only on it). Never deploy this.

Cookie sessions under /c/<mistake>/ (login form at /c/<m>/login, page /c/<m>/home, POST /c/<m>/logout):
  insecure-cookie  no Secure, no SameSite, a Domain, 30 days      counter-ids   session ids 1, 2, 3...
  fixation         adopts the id the browser brings at login      open-redirect  follows ?next= anywhere
  enumeration      "no such user" vs "wrong password"             traceback      a plain traceback on bad input
  cross-site       checks the CSRF token, never the Origin
Token APIs under /t/<mistake>/ (POST /t/<m>/login JSON, GET /t/<m>/profile, POST /t/<m>/logout, /t/<m>/refresh):
  alg-none         honours alg "none"                            empty-signature  an empty signature skips the check
  signature-only   trusts any signature it once issued           key-confusion    RS256, but HS256 keyed with the PEM
  embedded-jwk     verifies with the key in the token's header   kid-path         kid is a file name under keys/
  weak-no-exp      HS256 "secret", no exp check, 30-day tokens, no aud/iss
  refresh-reuse    refresh tokens never spent

Usage: python mistakes_app.py PORT   (HTTPS, ad-hoc certificate, 127.0.0.1)
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import os
import secrets
import sys
import tempfile
import time
import traceback
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Flask, Response, abort, jsonify, redirect, request

app = Flask(__name__)
USERS = {"alice": "correct horse battery staple"}
SESSIONS: dict[str, str] = {}  # id -> username
COUNTER = itertools.count(1000)
STRONG = secrets.token_bytes(32)
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PEM = RSA_KEY.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
KEYS_DIR = tempfile.mkdtemp(prefix="mistakes-keys-")
with open(os.path.join(KEYS_DIR, "k1"), "wb") as fh:
    fh.write(STRONG)
ISSUED_SIGNATURES: set[str] = set()
REVOKED: set[str] = set()
REFRESH: dict[str, str] = {}  # refresh token -> username (never spent)


# -- cookie sessions ------------------------------------------------------------------------------

def _b64(data: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _page(body: str, status: int = 200) -> Response:
    return Response(f"<!doctype html><title>t</title>{body}", status, mimetype="text/html")


def _user(m: str) -> str | None:
    return SESSIONS.get(request.cookies.get("sid", ""))


def _login_form(m: str, error: str = "", status: int = 200) -> Response:
    token = _b64(hashlib.sha256(b"login" + STRONG).digest())
    return _page(f'<p>{error}</p><form method="post" action="/c/{m}/login">'
                 f'<input type="hidden" name="csrf_token" value="{token}">'
                 '<input name="username"><input type="password" name="password"><button>Sign in</button></form>',
                 status)


@app.route("/c/<m>/login", methods=["GET", "POST"])
def c_login(m: str) -> Response:
    if request.method == "GET":
        return _login_form(m)
    try:
        username, password = request.form["username"], request.form["password"]
    except KeyError:
        if m == "traceback":
            return Response(traceback.format_exc(), 500, mimetype="text/plain")
        abort(400)
    if m == "enumeration" and username not in USERS:
        return _login_form(m, "No such user.", 401)
    if USERS.get(username) != password:
        return _login_form(m, "Wrong username or password.", 401)
    if m == "fixation" and request.cookies.get("sid"):
        sid = request.cookies["sid"]
    elif m == "counter-ids":
        sid = str(next(COUNTER))
    else:
        sid = secrets.token_urlsafe(32)
    SESSIONS[sid] = username
    target = request.args.get("next") or request.form.get("next") or f"/c/{m}/home"
    if m != "open-redirect" and not target.startswith(f"/c/{m}/"):
        target = f"/c/{m}/home"
    resp = redirect(target, code=303)
    if not (m == "fixation" and sid == request.cookies.get("sid")):
        if m == "insecure-cookie":
            resp.set_cookie("sid", sid, httponly=True, domain="127.0.0.1", max_age=30 * 86400)
        else:
            resp.set_cookie("sid", sid, secure=True, httponly=True, samesite="Lax")
    return resp


def _csrf_for(sid: str) -> str:
    return _b64(hmac.new(STRONG, sid.encode(), hashlib.sha256).digest())


@app.get("/c/<m>/home")
def c_home(m: str) -> Response:
    user = _user(m)
    if user is None:
        return redirect(f"/c/{m}/login", code=303)  # type: ignore[return-value]
    sid = request.cookies["sid"]
    return _page(f'<h1>Hello {user}</h1><form method="post" action="/c/{m}/logout">'
                 f'<input type="hidden" name="csrf_token" value="{_csrf_for(sid)}"><button>Log out</button></form>')


@app.post("/c/<m>/logout")
def c_logout(m: str) -> Response:
    sid = request.cookies.get("sid", "")
    if not hmac.compare_digest(request.form.get("csrf_token", ""), _csrf_for(sid)):
        abort(403)  # the token is checked; in "cross-site" (as everywhere here) the Origin never is
    if m != "cross-site" and request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
        abort(403)
    SESSIONS.pop(sid, None)
    resp = redirect(f"/c/{m}/login", code=303)
    resp.delete_cookie("sid")
    return resp  # type: ignore[return-value]


# -- token APIs -----------------------------------------------------------------------------------

def _issue(m: str, username: str) -> dict[str, str]:
    now = int(time.time())
    claims: dict[str, Any] = {"sub": username, "iat": now, "exp": now + 900, "jti": secrets.token_hex(8),
                              "iss": "https://mistakes.test", "aud": "mistakes"}
    headers = {"typ": "at+jwt"}
    if m == "key-confusion":
        token = jwt.encode(claims, RSA_KEY, algorithm="RS256", headers={**headers, "kid": "rsa1"})
    elif m == "weak-no-exp":
        claims = {"sub": username, "iat": now, "exp": now + 30 * 86400}
        token = jwt.encode(claims, "secret", algorithm="HS256")
    else:
        token = jwt.encode(claims, STRONG, algorithm="HS256", headers={**headers, "kid": "k1"})
    ISSUED_SIGNATURES.add(token.rsplit(".", 1)[1])
    out = {"access_token": token}
    if m == "refresh-reuse":
        refresh = secrets.token_urlsafe(32)
        REFRESH[refresh] = username
        out["refresh_token"] = refresh
    return out


def _hmac_ok(token: str, key: bytes) -> bool:
    body, _, sig = token.rpartition(".")
    expected = _b64(hmac.new(key, body.encode(), hashlib.sha256).digest())
    return hmac.compare_digest(expected, sig)


def _verify(m: str, token: str) -> dict[str, Any]:  # noqa: PLR0911, PLR0912 - one branch per mistake
    """The mistake of `m`, else a correct verification. Raises jwt.PyJWTError or ValueError."""
    header = jwt.get_unverified_header(token)
    unverified = jwt.decode(token, options={"verify_signature": False})
    strict = {"algorithms": ["HS256"], "audience": "mistakes", "issuer": "https://mistakes.test"}
    if header.get("jwk") or header.get("jku") or header.get("x5u"):
        if m != "embedded-jwk" or "jwk" not in header:
            raise ValueError("key-bearing header")
        key = jwt.PyJWK(header["jwk"]).key
        return jwt.decode(token, key, algorithms=[header["alg"]], audience="mistakes")
    if m == "alg-none" and str(header.get("alg")).lower() == "none":
        return unverified
    if m == "empty-signature" and token.endswith(".") and str(header.get("alg")).lower() != "none":
        return unverified
    if m == "signature-only":
        if token.rsplit(".", 1)[1] in ISSUED_SIGNATURES:
            return unverified
        raise ValueError("unknown signature")
    if m == "key-confusion":
        if header.get("alg") == "HS256":
            if _hmac_ok(token, PEM):
                return unverified
            raise ValueError("bad signature")
        return jwt.decode(token, RSA_KEY.public_key(), algorithms=["RS256"], audience="mistakes", issuer="https://mistakes.test")
    if m == "kid-path":
        with open(os.path.join(KEYS_DIR, str(header.get("kid", "k1"))), "rb") as fh:
            key = fh.read()
        if _hmac_ok(token, key):
            return unverified
        raise ValueError("bad signature")
    if m == "weak-no-exp":
        return jwt.decode(token, "secret", algorithms=["HS256"], options={"verify_exp": False, "verify_nbf": False})
    if header.get("kid") != "k1":
        raise ValueError("unknown kid")
    return jwt.decode(token, STRONG, **strict)


@app.post("/t/<m>/login")
def t_login(m: str) -> Response:
    body = request.get_json(silent=True) or {}
    if not isinstance(body, dict) or USERS.get(str(body.get("username"))) != body.get("password"):
        return jsonify(error="bad credentials"), 401  # type: ignore[return-value]
    return jsonify(_issue(m, str(body["username"])))


def _bearer(m: str) -> dict[str, Any] | None:
    auth = request.headers.get("Authorization", "")
    if not auth.startswith("Bearer "):
        return None
    try:
        claims = _verify(m, auth[7:])
    except Exception:  # noqa: BLE001 - any failure means "not authenticated" here
        return None
    if claims.get("jti") in REVOKED:
        return None
    return claims


@app.get("/t/<m>/profile")
def t_profile(m: str) -> Response:
    claims = _bearer(m)
    if claims is None:
        return jsonify(error="unauthorized"), 401  # type: ignore[return-value]
    resp = jsonify(user=claims.get("sub"))
    resp.headers["Cache-Control"] = "no-store"
    return resp


@app.post("/t/<m>/logout")
def t_logout(m: str) -> Response:
    claims = _bearer(m)
    if claims is None:
        return jsonify(error="unauthorized"), 401  # type: ignore[return-value]
    REVOKED.add(str(claims.get("jti")))
    return Response(status=204)


@app.post("/t/<m>/refresh")
def t_refresh(m: str) -> Response:
    body = request.get_json(silent=True) or {}
    user = REFRESH.get(str(body.get("refresh_token"))) if isinstance(body, dict) else None
    if user is None:
        return jsonify(error="unauthorized"), 401  # type: ignore[return-value]
    return jsonify(_issue(m, user))


@app.get("/t/key-confusion/jwks")
def jwks() -> Response:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(RSA_KEY.public_key()))
    return jsonify(keys=[{**jwk, "kid": "rsa1", "use": "sig", "alg": "RS256"}])


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(sys.argv[1]), ssl_context="adhoc", debug=False, use_reloader=False)
