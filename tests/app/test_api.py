"""The JSON API through Flask's test client: every endpoint, and every token refusal of SECURITY.md T1-T13
end-to-end (forged with PyJWT + cryptography), plus C6/C7 across cookie sessions and token families."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from tokens.forge import b64u, compact, parts, resign  # type: ignore[import-not-found]
from webtest import management_client  # type: ignore[import-not-found]

from sessionward.app import create_app
from sessionward.cli import main as cli_main
from sessionward.clock import ManualClock
from sessionward.db import make_engine
from sessionward.flask import jwt_required, state
from sessionward.tokens import SQLKeyRepository

DAY = 24 * 3600
BASE = "https://localhost"
PASSWORD = "correct horse battery staple"  # the same as tests/app/conftest.py's `alice` fixture uses


class Web:
    """What tests/app/conftest.py's `web` fixture gives (not imported: `conftest` is ambiguous when tests/e2e
    is collected in the same run)."""

    def __init__(self, app: Any, clock: ManualClock) -> None:
        self.app, self.clock = app, clock

    def client(self) -> Any:
        return self.app.test_client()

    def raw_client(self) -> Any:
        return self.app.test_client(use_cookies=False)

    @property
    def state(self) -> Any:
        with self.app.app_context():
            return state()

    def add_user(self, name: str, password: str = PASSWORD) -> Any:
        return self.state.users.create(name, password)


def web_login(client: Any, username: str, password: str = PASSWORD) -> Any:
    """The web form login (GET the form for its CSRF token, POST it)."""
    page = client.get("/login", base_url=BASE).get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token, "no csrf_token in the login page"
    return client.post("/login", base_url=BASE, data={"username": username, "password": password,
                                                      "csrf_token": token.group(1)})


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_invalid_token(r: Any) -> None:
    assert r.status_code == 401, (r.status_code, r.get_data(as_text=True))
    assert r.headers["WWW-Authenticate"] == 'Bearer realm="sessionward", error="invalid_token"'  # RFC 6750 3.1 (T12)
    assert r.get_json()["error"]["code"] == "invalid_token"


class Api:
    def __init__(self, web: Web) -> None:
        self.web = web
        self.c = web.raw_client()

    def login(self, username: str = "alice", password: str = PASSWORD, **headers: str) -> Any:
        return self.c.post("/api/login", base_url=BASE, json={"username": username, "password": password},
                           headers=headers)

    def pair(self, username: str = "alice", password: str = PASSWORD) -> dict[str, Any]:
        r = self.login(username, password)
        assert r.status_code == 200, r.get_data(as_text=True)
        return r.get_json()  # type: ignore[no-any-return]

    def profile(self, token: str) -> Any:
        return self.c.get("/api/profile", base_url=BASE, headers=auth(token))

    def refresh(self, refresh_token: Any) -> Any:
        return self.c.post("/api/refresh", base_url=BASE, json={"refresh_token": refresh_token})

    def post(self, path: str, token: str | None = None, **kw: Any) -> Any:
        return self.c.post(path, base_url=BASE, headers=auth(token) if token else {}, **kw)

    def get(self, path: str, token: str | None = None) -> Any:
        return self.c.get(path, base_url=BASE, headers=auth(token) if token else {})

    def delete(self, path: str, token: str) -> Any:
        return self.c.delete(path, base_url=BASE, headers=auth(token))

    def signing_key(self) -> Any:
        app = self.web.app
        repo = SQLKeyRepository(make_engine(app.config["SESSIONWARD_DATABASE_URL"]), app.config["SESSIONWARD_KEK"])
        return repo.load(now=self.web.clock.now()).signing_key(self.web.clock.now())


@pytest.fixture
def api(web: Any, alice: Any) -> Api:
    return Api(Web(web.app, web.clock))


# -- the endpoints -------------------------------------------------------------------------------

def test_login_profile_refresh_logout_and_replay(api: Api) -> None:
    r = api.login()
    assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store"
    pair = r.get_json()
    assert set(pair) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert pair["token_type"] == "Bearer" and pair["expires_in"] == 900
    assert api.profile(pair["access_token"]).get_json() == {"logged_in_as": "alice"}

    new = api.refresh(pair["refresh_token"]).get_json()
    assert new["access_token"] != pair["access_token"] and new["refresh_token"] != pair["refresh_token"]
    assert api.profile(new["access_token"]).status_code == 200

    r = api.post("/api/logout", new["access_token"])
    assert r.status_code == 204 and r.data == b""
    assert_invalid_token(api.profile(new["access_token"]))  # T9: replay after logout
    assert_invalid_token(api.refresh(new["refresh_token"]))


def test_login_failures_look_alike_A4(api: Api) -> None:
    unknown, wrong = api.login("mallory", PASSWORD), api.login("alice", "wrong password!")
    assert unknown.status_code == wrong.status_code == 401
    assert unknown.get_json() == wrong.get_json() == {
        "error": {"code": "invalid_credentials", "message": "Invalid username or password."}}


def test_login_throttled_like_the_web_A3(api: Api) -> None:
    statuses = [api.login("alice", f"wrong {i}").status_code for i in range(10)]
    assert 429 in statuses
    r = api.login("alice", PASSWORD)
    assert r.status_code == 429 and r.headers["Retry-After"].isdigit()  # even the right password waits
    assert r.get_json()["error"]["code"] == "throttled"
    api.web.clock.advance(int(r.headers["Retry-After"]) + 1)
    assert api.login("alice", PASSWORD).status_code == 200  # never locked out for good


@pytest.mark.parametrize(
    ("content_type", "body", "status"),
    [
        ("text/plain", b'{"username": "alice", "password": "x"}', 415),
        (None, b"username=alice&password=x", 415),
        ("application/json", b"{", 400),
        ("application/json", b"", 400),
        ("application/json", b'{"username": "a", "username": "b", "password": "x"}', 400),
        ("application/json", b'{"username": "a", "password": NaN}', 400),
        ("application/json", b'{"username": "\xff\xfe", "password": "x"}', 400),
        ("application/json", b"[" * 30000 + b"]" * 30000, 400),
        ("application/json", b"[]", 422),
        ("application/json", b'"alice"', 422),
        ("application/json", b"null", 422),
        ("application/json", b'{"username": "alice"}', 422),
        ("application/json", b'{"username": 1, "password": "x"}', 422),
        ("application/json", b'{"username": ["alice"], "password": "x"}', 422),
        ("application/json", b'{"username": "alice", "password": "x", "admin": true}', 422),
        ("application/json", b'{"username": "' + b"a" * 70000 + b'", "password": "x"}', 413),
    ],
)
def test_malformed_bodies_get_4xx_never_500(api: Api, content_type: str | None, body: bytes, status: int) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    r = api.c.post("/api/login", base_url=BASE, data=body, headers=headers)
    assert r.status_code == status, r.get_data(as_text=True)[:300]
    error = r.get_json()["error"]
    assert set(error) == {"code", "message"} and error["code"] and error["message"]


def test_unknown_route_and_wrong_method_answer_json(api: Api) -> None:
    r = api.get("/api/nope")
    assert r.status_code == 404 and r.get_json()["error"]["code"] == "not_found"
    r = api.get("/api/login")
    assert r.status_code == 405 and "POST" in r.headers["Allow"] and r.get_json()["error"]


def test_jwks_holds_only_public_keys_that_verify_our_tokens(api: Api) -> None:
    r = api.get("/.well-known/jwks.json")
    assert r.status_code == 200 and "max-age" in r.headers["Cache-Control"]
    jwks = r.get_json()
    for key in jwks["keys"]:
        assert {"kid", "alg", "use", "kty"} <= set(key) and not {"d", "p", "q", "k"} & set(key)
    token = api.pair()["access_token"]
    kid = jwt.get_unverified_header(token)["kid"]
    key = jwt.PyJWKSet.from_dict(jwks)[kid]
    claims = jwt.decode(token, key, algorithms=[key.algorithm_name], audience="sessionward-api", issuer="sessionward",
                        options={"verify_exp": False, "verify_iat": False, "verify_nbf": False})
    assert claims["sub"] == api.web.state.users.get_by_username("alice").id


def test_openapi_document_is_served(api: Api) -> None:
    doc = api.get("/api/openapi.json").get_json()
    assert doc["openapi"].startswith("3.1")
    assert {"/api/login", "/api/refresh", "/api/profile", "/api/logout", "/api/logout-all", "/api/sessions",
            "/api/sessions/{session_id}", "/api/password"} <= set(doc["paths"])
    assert doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"


# -- T1-T6, T13: forged tokens -------------------------------------------------------------------

def test_control_a_resigned_token_with_our_key_passes(api: Api) -> None:
    """The forging helpers work: without a defect, the same token re-signed with our key is accepted."""
    key = api.signing_key()
    token = api.pair()["access_token"]
    assert api.profile(resign(token, key.private, alg=key.alg)).status_code == 200


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
def test_T1_alg_none_refused(api: Api, alg: str) -> None:
    header, payload, _ = parts(api.pair()["access_token"])
    assert_invalid_token(api.profile(compact({**header, "alg": alg}, payload)))


def test_T1_stripped_null_and_tampered_signatures(api: Api) -> None:
    token = api.pair()["access_token"]
    head, body, sig = token.split(".")
    assert_invalid_token(api.profile(f"{head}.{body}."))
    assert_invalid_token(api.profile(f"{head}.{body}.{b64u(bytes(64))}"))
    header, payload, signature = parts(token)
    bob = api.web.add_user("bob")
    assert_invalid_token(api.profile(compact(header, {**payload, "sub": bob.id}, signature)))


def test_deeply_nested_header_is_invalid_token_not_500(api: Api) -> None:
    """A header of thousands of nested arrays, inside the size limit, makes Python's JSON parser raise
    RecursionError: that is a malformed token (401), never a 500."""
    _, body, sig = api.pair()["access_token"].split(".")
    assert_invalid_token(api.profile(f"{b64u(b'[' * 5000)}.{body}.{sig}"))


def _hs256(header: dict[str, Any], payload: dict[str, Any], key: bytes) -> str:
    """HS256 by hand: PyJWT itself refuses PEM/SSH text as an HMAC key, an attacker's code does not."""
    signing_input = compact(header, payload).rstrip(".")
    return f"{signing_input}.{b64u(hmac.new(key, signing_input.encode(), hashlib.sha256).digest())}"


def test_T2_no_key_confusion_public_key_as_hmac_secret(api: Api) -> None:
    token = api.pair()["access_token"]
    header, payload, _ = parts(token)
    public = api.signing_key().private.public_key()
    jwk = jwt.get_unverified_header(token)  # noqa: F841 - the header names our kid
    forms = [
        public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
        public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH),
        json.dumps(api.get("/.well-known/jwks.json").get_json()["keys"][0]).encode(),
    ]
    for form in forms:
        assert_invalid_token(api.profile(_hs256({**header, "alg": "HS256"}, payload, form)))


def test_T3_keys_only_from_our_key_set(api: Api) -> None:
    token = api.pair()["access_token"]
    header, payload, _ = parts(token)
    attacker = ed25519.Ed25519PrivateKey.generate()
    attacker_jwk = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(attacker.public_key()))
    for extra in ({"jwk": attacker_jwk}, {"jku": "https://attacker.test/jwks.json"}, {"x5u": "https://attacker.test/c"},
                  {"x5c": ["MIIB"]}):
        forged = jwt.encode(payload, attacker, algorithm="EdDSA", headers={**header, "alg": "EdDSA", **extra})
        assert_invalid_token(api.profile(forged))
    for kid, secret in (("../../../../dev/null", b""), ("x' UNION SELECT 'k' --", b"k"), ("/etc/passwd", b"root")):
        assert_invalid_token(api.profile(_hs256({"alg": "HS256", "typ": "at+jwt", "kid": kid}, payload, secret)))


def test_T4_times(api: Api) -> None:
    key = api.signing_key()
    token = api.pair()["access_token"]
    now = int(api.web.clock.now())
    assert_invalid_token(api.profile(resign(token, key.private, alg=key.alg, nbf=now + 3600)))
    assert_invalid_token(api.profile(resign(token, key.private, alg=key.alg, iat=now + 3600)))
    assert_invalid_token(api.profile(resign(token, key.private, alg=key.alg, exp=...)))
    assert_invalid_token(api.profile(resign(token, key.private, alg=key.alg, exp=str(now + 60))))
    api.web.clock.advance(900 + 20)  # within the leeway: still fine
    assert api.profile(token).status_code == 200
    api.web.clock.advance(15)
    assert_invalid_token(api.profile(token))


def test_T5_issuer_audience_and_type(api: Api) -> None:
    key = api.signing_key()
    pair = api.pair()
    token = pair["access_token"]
    for iss in ("sessionwar", "sessionward.evil", "xsessionward", ["sessionward"]):
        assert_invalid_token(api.profile(resign(token, key.private, alg=key.alg, iss=iss)))
    for aud in ("sessionward", ["sessionward-api", "other"], "other"):
        assert_invalid_token(api.profile(resign(token, key.private, alg=key.alg, aud=aud)))
    header, _, _ = parts(token)
    for typ in ("JWT", "rt+jwt", None):
        hdr = {k: v for k, v in {**header, "typ": typ}.items() if v is not None}
        assert_invalid_token(api.profile(resign(token, key.private, alg=key.alg, header=hdr)))
    assert_invalid_token(api.profile(pair["refresh_token"]))  # a refresh token is no access token
    assert_invalid_token(api.refresh(token))  # and back


def test_T6_crit_and_oversized_tokens(api: Api) -> None:
    key = api.signing_key()
    token = api.pair()["access_token"]
    header, _, _ = parts(token)
    assert_invalid_token(api.profile(resign(token, key.private, alg=key.alg, header={**header, "crit": ["x"]})))
    huge = "eyJ" + "A" * (1024 * 1024) + "." + "A" * 10 + "." + "A" * 10
    t0 = time.monotonic()
    r = api.profile(huge)
    assert r.status_code in (401, 413) and time.monotonic() - t0 < 2
    if r.status_code == 401:
        assert_invalid_token(r)


def test_T13_ecdsa_zero_signatures_refused(tmp_path: Any) -> None:
    clock = ManualClock()
    web = Web(create_app(tmp_path / "es", clock=clock, config={"SESSIONWARD_TOKEN_ALG": "ES256"}), clock)
    web.add_user("alice")
    api = Api(web)
    token = api.pair()["access_token"]
    assert jwt.get_unverified_header(token)["alg"] == "ES256" and api.profile(token).status_code == 200
    head, body, _ = token.split(".")
    der_zero = bytes.fromhex("3006020100020100")
    for signature in (bytes(64), der_zero):
        assert_invalid_token(api.profile(f"{head}.{body}.{b64u(signature)}"))


@pytest.mark.parametrize("value", ["00" * 16, "ab" * 40, "0123456789abcdef" * 4 + "zz"])
def test_T7_service_refuses_to_start_with_a_weak_refresh_key(tmp_path: Any, monkeypatch: pytest.MonkeyPatch,
                                                              value: str) -> None:
    from sessionward.exceptions import ConfigError

    monkeypatch.setenv("SESSIONWARD_REFRESH_KEY", value)  # 128 bits; 320 bits of one repeated byte pair; not hex
    with pytest.raises(ConfigError) as info:
        create_app(tmp_path / "inst")
    assert info.value.setting == "SESSIONWARD_REFRESH_KEY"


# -- T8-T12: refresh, revocation, rotation, errors ---------------------------------------------

def test_T8_rotation_and_reuse_revokes_the_family(api: Api) -> None:
    r1 = api.pair()
    r2 = api.refresh(r1["refresh_token"]).get_json()
    assert_invalid_token(api.refresh(r1["refresh_token"]))  # R1 again: reuse
    assert_invalid_token(api.refresh(r2["refresh_token"]))  # ... and R2 died with the family
    assert_invalid_token(api.profile(r1["access_token"]))  # ... and so did every access token of the family
    assert_invalid_token(api.profile(r2["access_token"]))


@pytest.mark.parametrize("junk", ["", "x", "a.b.c", "A" * 22 + ".0." + "A" * 43, "A" * 5000, "🙂"])
def test_T8_junk_refresh_tokens(api: Api, junk: str) -> None:
    assert_invalid_token(api.refresh(junk))


def test_T8_concurrent_refresh_exactly_one_wins(api: Api) -> None:
    refresh_token = api.pair()["refresh_token"]
    n = 6
    barrier = threading.Barrier(n)
    statuses: list[int] = []
    lock = threading.Lock()

    def run() -> None:
        client = api.web.raw_client()
        barrier.wait()
        r = client.post("/api/refresh", base_url=BASE, json={"refresh_token": refresh_token})
        with lock:
            statuses.append(r.status_code)

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(statuses) == [200] + [401] * (n - 1), statuses


def test_T9_logout_with_refresh_token_only_for_the_same_user(api: Api) -> None:
    a1, a2 = api.pair(), api.pair()
    api.web.add_user("bob")
    b = api.pair("bob")
    r = api.post("/api/logout", a1["access_token"], json={"refresh_token": b["refresh_token"]})
    assert r.status_code == 204
    assert api.refresh(b["refresh_token"]).status_code == 200  # bob's family is not alice's to end
    a3 = api.pair()
    assert api.post("/api/logout", a3["access_token"], json={"refresh_token": a2["refresh_token"]}).status_code == 204
    assert_invalid_token(api.refresh(a2["refresh_token"]))
    assert_invalid_token(api.profile(a3["access_token"]))


def test_T9_logout_all(api: Api) -> None:
    cookie = api.web.client()
    assert web_login(cookie, "alice").status_code == 303
    p1, p2 = api.pair(), api.pair()
    assert api.post("/api/logout-all", p1["access_token"]).status_code == 204
    for p in (p1, p2):
        assert_invalid_token(api.profile(p["access_token"]))
        assert_invalid_token(api.refresh(p["refresh_token"]))
    assert cookie.get("/dashboard", base_url=BASE).status_code == 303  # the cookie session ended too


def assert_fresh_login_required(r: Any) -> None:
    """RFC 6750 3.1 challenge with the RFC 9470 error code: the token is valid, the login behind it too old."""
    assert r.status_code == 401, (r.status_code, r.get_data(as_text=True))
    assert r.headers["WWW-Authenticate"] == (
        'Bearer realm="sessionward", error="insufficient_user_authentication", '
        'error_description="A fresh login is required"'
    )
    assert r.get_json()["error"]["code"] == "fresh_token_required"


def sid(access_token: str) -> str:
    return str(jwt.decode(access_token, options={"verify_signature": False})["sid"])


def test_C14_ending_another_family_needs_a_fresh_token(api: Api) -> None:
    owner = api.pair()
    cookie = api.web.client()
    assert web_login(cookie, "alice").status_code == 303
    cookie_id = next(r["id"] for r in api.get("/api/sessions", owner["access_token"]).get_json()["sessions"]
                     if r["kind"] == "cookie")
    thief = api.refresh(api.pair()["refresh_token"]).get_json()  # a refreshed access token is never fresh
    for target in (sid(owner["access_token"]), cookie_id, "A" * 22):  # a family, a cookie session, nothing
        assert_fresh_login_required(api.delete(f"/api/sessions/{target}", thief["access_token"]))
    assert api.profile(owner["access_token"]).status_code == 200  # the owner's family is still alive
    assert cookie.get("/dashboard", base_url=BASE).status_code == 200
    # a fresh token (a password login just now) may
    fresh = api.pair()
    assert api.delete(f"/api/sessions/{sid(owner['access_token'])}", fresh["access_token"]).status_code == 204
    assert_invalid_token(api.profile(owner["access_token"]))
    assert_invalid_token(api.refresh(owner["refresh_token"]))
    assert api.delete(f"/api/sessions/{cookie_id}", fresh["access_token"]).status_code == 204
    assert cookie.get("/dashboard", base_url=BASE).status_code == 303
    # ending one's own family never needs freshness: it is a logout
    assert api.delete(f"/api/sessions/{sid(thief['access_token'])}", thief["access_token"]).status_code == 204
    assert_invalid_token(api.profile(thief["access_token"]))
    assert_invalid_token(api.refresh(thief["refresh_token"]))


def test_C14_logout_all_needs_no_fresh_token_because_it_ends_the_caller_too(api: Api) -> None:
    """Ending everything, the caller included, gives a thief nothing to keep: it is the owner's panic button."""
    owner = api.pair()
    thief = api.refresh(api.pair()["refresh_token"]).get_json()
    assert api.post("/api/logout-all", thief["access_token"]).status_code == 204
    for p in (owner, thief):
        assert_invalid_token(api.profile(p["access_token"]))
        assert_invalid_token(api.refresh(p["refresh_token"]))
    assert api.profile(api.pair()["access_token"]).status_code == 200  # the owner logs in again; the thief cannot


def test_T10_idle_and_absolute_family_lifetimes(api: Api) -> None:
    clock = api.web.clock
    idle = api.pair()
    clock.advance(14 * DAY + 1)
    assert_invalid_token(api.refresh(idle["refresh_token"]))
    pair = api.pair()
    for _ in range(2):
        clock.advance(10 * DAY)
        pair = api.refresh(pair["refresh_token"]).get_json()
    clock.advance(10 * DAY)  # 30 days after login: used within every idle window, but too old
    assert_invalid_token(api.refresh(pair["refresh_token"]))


def wall_clock_api(tmp_path: Any) -> tuple[Api, ManualClock, dict[str, Any], str]:
    """An app whose clock starts at the wall clock (the CLI's), alice's first pair and its kid."""
    clock = ManualClock(time.time())  # the CLI runs on the wall clock; keep the app's clock next to it
    web = Web(create_app(tmp_path / "inst", clock=clock), clock)
    web.add_user("alice")
    api = Api(web)
    old = api.pair()
    return api, clock, old, jwt.get_unverified_header(old["access_token"])["kid"]


def test_T11_rotation_via_cli_keeps_tokens_valid(tmp_path: Any, capsys: Any) -> None:
    api, clock, old, old_kid = wall_clock_api(tmp_path)
    web = api.web
    assert cli_main(["keys", "rotate", "--instance", web.app.instance_path]) == 0  # type: ignore[attr-defined]
    assert "new signing key" in capsys.readouterr().out
    clock.set(time.time() + 11)  # the new key activates 2 x the key refresh interval (5 s) after the rotation
    new = api.pair()
    new_kid = jwt.get_unverified_header(new["access_token"])["kid"]
    assert new_kid != old_kid
    assert api.profile(old["access_token"]).status_code == 200  # rotation logs nobody out
    assert api.profile(new["access_token"]).status_code == 200
    kids = {k["kid"] for k in api.get("/.well-known/jwks.json").get_json()["keys"]}
    assert {old_kid, new_kid} <= kids
    assert cli_main(["keys", "list", "--instance", web.app.instance_path]) == 0  # type: ignore[attr-defined]
    listing = capsys.readouterr().out
    assert old_kid in listing and new_kid in listing and "signing" in listing


def test_T14_cli_revoke_refuses_the_keys_tokens_at_once_and_lists_it_revoked(tmp_path: Any, capsys: Any) -> None:
    api, clock, old, old_kid = wall_clock_api(tmp_path)
    web = api.web
    instance = web.app.instance_path  # type: ignore[attr-defined]
    assert cli_main(["keys", "revoke", "--instance", instance, "--", old_kid]) == 1  # the key that signs now
    assert "keys rotate" in capsys.readouterr().err
    assert api.profile(old["access_token"]).status_code == 200
    # a rotation whose 10 s publication delay has passed: the app has read the new key, which signs now
    repo = SQLKeyRepository(make_engine(web.app.config["SESSIONWARD_DATABASE_URL"]), web.app.config["SESSIONWARD_KEK"])
    new_kid = repo.rotate(now=time.time(), activate_after=0).kid
    clock.set(time.time() + 6)  # past the app's key refresh interval (5 s)
    assert api.profile(old["access_token"]).status_code == 200  # the app re-reads its keys; the old one verifies
    assert cli_main(["keys", "revoke", "--instance", instance, "--", old_kid]) == 0
    out = capsys.readouterr().out
    assert f"revoked signing key {old_kid}" in out and "1 live token family got their latest access token" in out
    assert_invalid_token(api.profile(old["access_token"]))  # at once, though the app has not re-read its keys
    new = api.refresh(old["refresh_token"])  # the family survives: refresh tokens are not signed with it
    assert new.status_code == 200 and jwt.get_unverified_header(new.json["access_token"])["kid"] == new_kid
    assert api.profile(new.json["access_token"]).status_code == 200
    assert cli_main(["keys", "list", "--instance", instance]) == 0
    rows = {line.split()[0]: line.split()[2] for line in capsys.readouterr().out.splitlines()[1:]}
    assert rows == {new_kid: "signing", old_kid: "revoked"}
    assert cli_main(["keys", "revoke", "--instance", instance, "--", "no-such-kid"]) == 1
    assert "no signing key" in capsys.readouterr().err


def test_T11_rotate_off_the_deprecated_eddsa_name(tmp_path: Any, capsys: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A deployment whose key says `EdDSA` (RFC 9864 deprecates it) moves to `Ed25519` with `keys rotate`:
    without `--alg` the rotation follows SESSIONWARD_TOKEN_ALG, `--alg` wins over it, and old tokens stay valid."""
    clock = ManualClock(time.time())
    web = Web(create_app(tmp_path / "inst", clock=clock, config={"SESSIONWARD_TOKEN_ALG": "EdDSA"}), clock)
    web.add_user("alice")
    api = Api(web)
    old = api.pair()["access_token"]
    assert jwt.get_unverified_header(old)["alg"] == "EdDSA"
    monkeypatch.setenv("SESSIONWARD_TOKEN_ALG", "Ed25519")
    assert cli_main(["keys", "rotate", "--instance", web.app.instance_path]) == 0  # type: ignore[attr-defined]
    assert "(Ed25519)" in capsys.readouterr().out
    clock.set(time.time() + 11)  # activation: 2 x the key refresh interval
    new = api.pair()["access_token"]
    assert jwt.get_unverified_header(new)["alg"] == "Ed25519"
    assert api.profile(old).status_code == 200 and api.profile(new).status_code == 200
    assert cli_main(["keys", "rotate", "--alg", "ES256", "--instance", web.app.instance_path]) == 0  # type: ignore[attr-defined]
    assert "(ES256)" in capsys.readouterr().out


def test_T12_valid_token_without_the_right_is_403(tmp_path: Any) -> None:
    clock = ManualClock()
    app = create_app(tmp_path / "inst", clock=clock)

    @app.get("/api/admin-report")
    @jwt_required(scopes=["admin"])
    def report() -> Any:
        return {"secret": 42}

    web = Web(app, clock)
    web.add_user("alice")
    api = Api(web)
    r = api.get("/api/admin-report", api.pair()["access_token"])
    assert r.status_code == 403 and 'error="insufficient_scope"' in r.headers["WWW-Authenticate"]
    assert r.get_json()["error"]["code"] == "insufficient_scope"
    r = api.get("/api/admin-report")
    assert r.status_code == 401 and "error=" not in r.headers["WWW-Authenticate"]


# -- C6, C7: one registry for cookie sessions and token families --------------------------------

def test_C7_sessions_listed_together_and_ended_from_the_api(api: Api) -> None:
    web = api.web
    cookie = web.client()
    assert web_login(cookie, "alice").status_code == 303
    pair = api.c.post("/api/login", base_url=BASE, json={"username": "alice", "password": PASSWORD},
                      headers={"User-Agent": "curl/8.5.0"}).get_json()
    rows = api.get("/api/sessions", pair["access_token"]).get_json()["sessions"]
    assert sorted(r["kind"] for r in rows) == ["cookie", "token"]
    for row in rows:
        assert {"id", "kind", "device", "address", "created_at", "last_seen", "current", "device_bound",
                "dpop_bound"} == set(row)
        assert row["created_at"].endswith("Z") and row["address"] == "127.0.0.1"
    token_row = next(r for r in rows if r["kind"] == "token")
    cookie_row = next(r for r in rows if r["kind"] == "cookie")
    assert token_row["current"] and not cookie_row["current"] and token_row["device"].startswith("curl")
    page = cookie.get("/sessions", base_url=BASE).get_data(as_text=True)
    assert token_row["id"] in page and cookie_row["id"] in page  # the web page lists the token family too

    api.web.add_user("bob")
    bob = api.pair("bob")
    assert api.delete(f"/api/sessions/{cookie_row['id']}", bob["access_token"]).status_code == 404  # not bob's
    assert api.delete("/api/sessions/" + "A" * 22, pair["access_token"]).status_code == 404
    assert cookie.get("/dashboard", base_url=BASE).status_code == 200

    assert api.delete(f"/api/sessions/{cookie_row['id']}", pair["access_token"]).status_code == 204
    assert cookie.get("/dashboard", base_url=BASE).status_code == 303  # that browser is logged out
    assert api.delete(f"/api/sessions/{token_row['id']}", pair["access_token"]).status_code == 204
    assert_invalid_token(api.profile(pair["access_token"]))  # ending the current family is a logout


def test_C6_password_change_needs_fresh_token_and_current_password(api: Api) -> None:
    web = api.web
    cookie = web.client()
    assert web_login(cookie, "alice").status_code == 303
    other = api.pair()
    stale = api.refresh(api.pair()["refresh_token"]).get_json()  # refreshed access tokens are never fresh
    body = {"current_password": PASSWORD, "new_password": "a much better passphrase"}
    r = api.post("/api/password", stale["access_token"], json=body)
    assert r.status_code == 401 and "insufficient_user_authentication" in r.headers["WWW-Authenticate"]

    fresh = api.pair()
    r = api.post("/api/password", fresh["access_token"], json={**body, "current_password": "not it at all"})
    assert r.status_code == 403 and r.get_json()["error"]["code"] == "wrong_password"
    r = api.post("/api/password", fresh["access_token"], json={**body, "new_password": "password"})
    assert r.status_code == 422 and r.get_json()["error"]["code"] == "weak_password"
    assert api.post("/api/password", fresh["access_token"], json={"current_password": PASSWORD}).status_code == 422

    r = api.post("/api/password", fresh["access_token"], json=body)
    assert r.status_code == 200
    new = r.get_json()
    for p in (other, stale, fresh):
        assert_invalid_token(api.profile(p["access_token"]))
        assert_invalid_token(api.refresh(p["refresh_token"]))
    assert cookie.get("/dashboard", base_url=BASE).status_code == 303
    assert api.profile(new["access_token"]).status_code == 200
    assert api.login("alice", PASSWORD).status_code == 401
    assert api.login("alice", body["new_password"]).status_code == 200


def test_C6_account_disable_via_cli_ends_tokens(api: Api, capsys: Any) -> None:
    pair = api.pair()
    assert cli_main(["users", "disable", "alice", "--instance", api.web.app.instance_path]) == 0  # type: ignore[attr-defined]
    assert_invalid_token(api.profile(pair["access_token"]))
    assert_invalid_token(api.refresh(pair["refresh_token"]))
    assert api.login().status_code == 401


def test_disabled_user_cannot_refresh_even_without_epoch_bump(api: Api) -> None:
    pair = api.pair()
    with api.web.app.app_context():  # type: ignore[attr-defined]
        state().users.set_disabled(api.web.state.users.get_by_username("alice").id, True)
    assert_invalid_token(api.refresh(pair["refresh_token"]))
    assert_invalid_token(api.profile(pair["access_token"]))


# -- O2: the store down means 503 for the API too, never access ---------------------------------

def test_O2_store_down_means_503_for_tokens_then_recovery(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from _services import missing_service, start_redis_server  # type: ignore[import-not-found]

    try:
        redis_server = start_redis_server()
    except RuntimeError as exc:
        missing_service(str(exc))
    try:
        monkeypatch.setenv("SESSIONWARD_STORE_URL", redis_server.url)
        clock = ManualClock(time.time())
        web = Web(create_app(tmp_path / "inst", clock=clock), clock)
        web.add_user("alice")
        api = Api(web)
        pair = api.pair()
        assert api.profile(pair["access_token"]).status_code == 200

        redis_server.stop()
        for r in (api.profile(pair["access_token"]), api.refresh(pair["refresh_token"]), api.login(),
                  api.post("/api/logout", pair["access_token"])):
            assert r.status_code == 503, (r.status_code, r.get_data(as_text=True)[:200])
            assert r.headers["Retry-After"].isdigit() and r.get_json()["error"]["code"] == "store_unavailable"

        redis_server.start()  # back, and empty (it keeps nothing): the family is gone
        deadline = time.monotonic() + 10
        while api.get("/healthz").status_code != 200:
            assert time.monotonic() < deadline, "did not recover within 10 s"
            time.sleep(0.2)
        assert_invalid_token(api.refresh(pair["refresh_token"]))
        assert api.pair()["token_type"] == "Bearer"
    finally:
        redis_server.cleanup()


def test_metrics_time_token_verification_and_count_refreshes(api: Api) -> None:
    def metric(text: str, prefix: str) -> float:
        return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(prefix))

    client = management_client(api.web.app)
    before = client.get("/metrics").get_data(as_text=True)
    pair = api.pair()
    assert api.profile(pair["access_token"]).status_code == 200
    assert api.refresh(pair["refresh_token"]).status_code == 200
    after = client.get("/metrics").get_data(as_text=True)
    count = 'sessionward_auth_seconds_count{mechanism="token"}'
    assert metric(after, count) >= metric(before, count) + 1
    assert metric(after, "sessionward_refreshes_total") == metric(before, "sessionward_refreshes_total") + 1
