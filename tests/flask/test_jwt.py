"""The Flask token layer (`sessionward.flask.jwt`) on a small app of its own: settings validated at start-up,
strict Authorization parsing, RFC 6750 / RFC 9470 answers, decode once per request, fresh and scopes, the
cookie location with its token-bound double-submit CSRF value."""

from __future__ import annotations

import secrets
from http.cookies import SimpleCookie
from typing import Any

import pytest
from flask import Flask, jsonify

from sessionward.clock import ManualClock
from sessionward.exceptions import ConfigError
from sessionward.flask import (
    Sessionward,
    csrf_exempt,
    current_user,
    get_jwt,
    get_jwt_identity,
    jwt_required,
    login_user,
    set_access_cookies,
    state,
    token_service,
    verify_jwt_in_request,
)
from sessionward.flask.jwt import ACCESS_COOKIE, CSRF_ACCESS_COOKIE
from sessionward.settings import Settings
from sessionward.tokens import TokenService

PASSWORD = "correct horse battery staple"
BASE = "https://app.test"


def make_app(tmp_path: Any, clock: ManualClock | None = None, **config: Any) -> Flask:
    app = Flask(__name__)
    db = f"sqlite:///{tmp_path / 'sw.db'}"
    app.config.update(
        SESSIONWARD_STORE_URL=db,
        SESSIONWARD_DATABASE_URL=db,
        SESSIONWARD_CSRF_KEY=secrets.token_bytes(32),
        SESSIONWARD_REFRESH_KEY=secrets.token_bytes(32),
        SESSIONWARD_KEK=secrets.token_bytes(32),
    )
    app.config.update(config)
    Sessionward(app, clock=clock or ManualClock())

    @app.get("/me")
    @jwt_required()
    def me() -> Any:
        return jsonify(user=current_user.username, sub=get_jwt_identity(), jti=get_jwt()["jti"])

    @app.get("/maybe")
    @jwt_required(optional=True)
    def maybe() -> Any:
        return jsonify(sub=get_jwt_identity(), claims=get_jwt())

    @app.post("/fresh")
    @jwt_required(fresh=True)
    def fresh() -> Any:
        return jsonify(ok=True)

    @app.get("/admin")
    @jwt_required(scopes=["admin"])
    def admin() -> Any:
        return jsonify(ok=True)

    @app.route("/spa", methods=["GET", "POST"])
    @jwt_required(locations=("headers", "cookies"))
    def spa() -> Any:
        return jsonify(user=current_user.username)

    @app.get("/twice")
    @jwt_required()
    def twice() -> Any:
        verify_jwt_in_request()
        verify_jwt_in_request(fresh=False)
        return jsonify(a=get_jwt_identity(), b=get_jwt()["sub"], c=current_user.id)

    @app.post("/session-login")
    @csrf_exempt
    def session_login() -> Any:
        login_user(state().users.get_by_username("alice"))
        return jsonify(ok=True)

    @app.get("/session-then-token")
    def session_then_token() -> Any:
        first = current_user.username if current_user else None  # e.g. a before_request hook read it
        verify_jwt_in_request()
        return jsonify(first=first, user=current_user.username, sub=get_jwt_identity())

    @app.post("/cookie-login")
    def cookie_login() -> Any:
        with app.app_context():
            user = state().users.get_by_username("alice")
        pair = token_service().issue(user.id, fresh=True)
        return set_access_cookies(jsonify(ok=True), pair.access_token)

    return app


@pytest.fixture
def app(tmp_path: Any, clock: ManualClock) -> Flask:
    return make_app(tmp_path, clock)


@pytest.fixture
def alice(app: Flask) -> Any:
    with app.app_context():
        return state().users.create("alice", PASSWORD)


def issue(app: Flask, user: Any, *, fresh: bool = True, **extra: Any) -> str:
    with app.app_context():
        return token_service().issue(user.id, fresh=fresh, extra_claims=extra or None).access_token


def get(app: Flask, path: str, *, headers: dict[str, str] | None = None, method: str = "GET") -> Any:
    headers = {"Accept": "application/json", **(headers or {})}
    return app.test_client(use_cookies=False).open(path, method=method, base_url=BASE, headers=headers)


# -- start-up ------------------------------------------------------------------------------------

def test_service_built_at_start_up_into_the_state(app: Flask) -> None:
    with app.app_context():
        service = state().tokens
        assert isinstance(service, TokenService)
        assert service.policy.issuer == "sessionward"
        assert service.jwks()["keys"][0]["alg"] == "ES256"  # the default (RFC 9864: no deprecated name)


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("SESSIONWARD_REFRESH_KEY", b"short"),  # T7: a short HMAC key stops the app
        ("SESSIONWARD_REFRESH_KEY", b"a" * 32),  # not random-looking
        ("SESSIONWARD_REFRESH_KEY", "not hex"),
        ("SESSIONWARD_KEK", b"k" * 40),
        ("SESSIONWARD_ACCESS_TTL", "soon"),
        ("SESSIONWARD_ACCESS_TTL", "5"),
        ("SESSIONWARD_ACCESS_TTL", -1),
        ("SESSIONWARD_REFRESH_REUSE_GRACE", "3600"),
        ("SESSIONWARD_TOKEN_ALG", "none"),
        ("SESSIONWARD_TOKEN_ALG", "HS512"),
        ("SESSIONWARD_TOKEN_CACHE_SIZE", "lots"),
        ("SESSIONWARD_TOKEN_CACHE_SIZE", -1),
        ("SESSIONWARD_TOKEN_CACHE_SIZE", 2.5),
        ("SESSIONWARD_TOKEN_CACHE_SIZE", 10**7),
        ("SESSIONWARD_ISSUER", " padded "),
        ("SESSIONWARD_AUDIENCE", ""),
    ],
)
def test_bad_setting_stops_the_app_naming_it(tmp_path: Any, setting: str, value: Any) -> None:
    with pytest.raises(ConfigError) as info:
        make_app(tmp_path, **{setting: value})
    assert info.value.setting == setting
    assert setting in str(info.value)


def test_refresh_key_must_differ_from_an_hmac_signing_key(tmp_path: Any) -> None:
    """One key per purpose: the refresh key never doubles as a signing key."""
    from sessionward.tokens import KeySet, SigningKey

    key = secrets.token_bytes(32)
    app = Flask(__name__)
    db = f"sqlite:///{tmp_path / 'sw.db'}"
    app.config.update(SESSIONWARD_STORE_URL=db, SESSIONWARD_DATABASE_URL=db,
                      SESSIONWARD_CSRF_KEY=secrets.token_bytes(32), SESSIONWARD_REFRESH_KEY=key)
    with pytest.raises(ConfigError) as info:
        Sessionward(app, token_keys=KeySet([SigningKey(kid="k1", alg="HS256", private=key)]))
    assert info.value.setting == "SESSIONWARD_REFRESH_KEY"


def test_settings_from_environment_text(tmp_path: Any) -> None:
    app = make_app(tmp_path, SESSIONWARD_ACCESS_TTL="120", SESSIONWARD_ISSUER="https://id.example",
                   SESSIONWARD_AUDIENCE="lab", SESSIONWARD_TOKEN_ALG="Ed25519", SESSIONWARD_REFRESH_REUSE_GRACE="2",
                   SESSIONWARD_TOKEN_CACHE_SIZE="10")
    with app.app_context():
        policy = token_service().policy
        assert (policy.access_ttl, policy.issuer, policy.audience, policy.reuse_grace) == (
            120, "https://id.example", "lab", 2)
        assert token_service().jwks()["keys"][0]["alg"] == "Ed25519"
        assert token_service()._cache.size == 10  # type: ignore[attr-defined]
    assert Settings.from_mapping({}).tokens.policy.issuer == "sessionward"


def test_kek_without_refresh_key_is_an_error_and_no_keys_means_no_tokens(tmp_path: Any) -> None:
    app = Flask(__name__)
    db = f"sqlite:///{tmp_path / 'sw.db'}"
    app.config.update(SESSIONWARD_STORE_URL=db, SESSIONWARD_DATABASE_URL=db,
                      SESSIONWARD_CSRF_KEY=secrets.token_bytes(32),
                      SESSIONWARD_KEK=secrets.token_bytes(32))
    with pytest.raises(ConfigError) as info:
        Sessionward(app)
    assert info.value.setting == "SESSIONWARD_REFRESH_KEY"

    plain = Flask(__name__)
    plain.config.update(SESSIONWARD_STORE_URL=db, SESSIONWARD_DATABASE_URL=db,
                        SESSIONWARD_CSRF_KEY=secrets.token_bytes(32))
    Sessionward(plain)

    @plain.get("/x")
    @jwt_required()
    def x() -> Any:
        return "never"

    with plain.app_context():
        assert state().tokens is None
    r = plain.test_client().get("/x", base_url=BASE, headers={"Authorization": "Bearer a.b.c"})
    assert r.status_code == 500 and "never" not in r.get_data(as_text=True)  # loud, not a silent pass


# -- the Authorization header ------------------------------------------------------------------

def test_valid_token_and_current_user(app: Flask, alice: Any) -> None:
    token = issue(app, alice)
    r = get(app, "/me", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200
    assert r.get_json()["user"] == "alice" and r.get_json()["sub"] == alice.id
    assert r.headers["Cache-Control"] == "no-store"


def test_a_session_and_a_token_of_two_users_never_mix(app: Flask, alice: Any) -> None:
    """A request that already acted as the cookie session's user (alice) is refused when its token names
    another user (bob): the view never runs with one user and another's token."""
    with app.app_context():
        bob = state().users.create("bob", PASSWORD)
    browser = app.test_client()
    assert browser.post("/session-login", base_url=BASE).status_code == 200
    r = browser.get("/session-then-token", base_url=BASE,
                    headers={"Authorization": f"Bearer {issue(app, bob)}", "Accept": "application/json"})
    assert r.status_code == 401 and r.get_json()["error"]["code"] == "invalid_token", r.get_data(as_text=True)
    r = browser.get("/session-then-token", base_url=BASE,
                    headers={"Authorization": f"Bearer {issue(app, alice)}", "Accept": "application/json"})
    assert r.status_code == 200 and r.get_json() == {"first": "alice", "user": "alice", "sub": alice.id}


def test_request_state_is_per_request_even_inside_one_outer_app_context(app: Flask, alice: Any) -> None:
    """Flask reuses an app context that is already pushed, and with it `g`: a request's verified token, user
    and session must not carry over to the next request made inside the same `with app.app_context()` (a
    test, a CLI command, a task runner). A token revoked between two such requests is refused in the second."""
    token = issue(app, alice)
    with app.app_context():
        assert get(app, "/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        claims = token_service().verify_access(token)
        state().store.delete(claims.sid)  # end the token's family (what logout does)
        r = get(app, "/me", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401
        assert get(app, "/maybe").get_json()["sub"] is None  # and no identity left over from before


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
def test_scheme_is_case_insensitive(app: Flask, alice: Any, scheme: str) -> None:
    assert get(app, "/me", headers={"Authorization": f"{scheme} {issue(app, alice)}"}).status_code == 200


@pytest.mark.parametrize("header", [None, "Basic YWxpY2U6cGFzcw==", "Token abc", ""])
def test_no_bearer_credentials_is_401_with_realm_and_no_error_code(app: Flask, header: str | None) -> None:
    r = get(app, "/me", headers={"Authorization": header} if header is not None else {})
    assert r.status_code == 401
    challenge = r.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer realm=") and "error=" not in challenge  # RFC 6750 3.1
    assert r.get_json()["error"]["code"] == "authorization_required"


@pytest.mark.parametrize("template", ["Bearer", "Bearer ", "Bearer  {t}", "Bearer {t} extra", "Bearer {t},Bearer {t}",
                                      "Bearer\t{t}", "Bearer {t}\x00", "Bearer ü{t}"])
def test_malformed_authorization_header_is_400_invalid_request(app: Flask, alice: Any, template: str) -> None:
    r = get(app, "/me", headers={"Authorization": template.format(t=issue(app, alice))})
    assert r.status_code == 400, r.get_data(as_text=True)
    assert 'error="invalid_request"' in r.headers["WWW-Authenticate"]


def test_token_in_query_string_or_form_is_ignored(app: Flask, alice: Any) -> None:
    token = issue(app, alice)
    c = app.test_client(use_cookies=False)
    assert c.get(f"/me?access_token={token}", base_url=BASE).status_code == 401
    assert c.post("/fresh", base_url=BASE, data={"access_token": token}).status_code == 401


def test_bad_token_is_401_invalid_token(app: Flask, alice: Any) -> None:
    token = issue(app, alice)
    r = get(app, "/me", headers={"Authorization": f"Bearer {token[:-4]}AAAA"})
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == 'Bearer realm="sessionward", error="invalid_token"'
    assert r.get_json() == {
        "error": {"code": "invalid_token", "message": "The token is missing, invalid, expired or revoked."}}


def test_disabled_or_deleted_user_is_refused_even_with_a_valid_token(app: Flask, alice: Any) -> None:
    token = issue(app, alice)
    with app.app_context():
        state().users.set_disabled(alice.id, True)  # no epoch bump here: the user check alone must refuse
    r = get(app, "/me", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401 and 'error="invalid_token"' in r.headers["WWW-Authenticate"]


def test_decoded_once_per_request(app: Flask, alice: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    token = issue(app, alice)
    calls = []
    original = TokenService.verify_access

    def counting(self: TokenService, t: str) -> Any:
        calls.append(t)
        return original(self, t)

    monkeypatch.setattr(TokenService, "verify_access", counting)
    r = get(app, "/twice", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200 and r.get_json() == {"a": alice.id, "b": alice.id, "c": alice.id}
    assert len(calls) == 1
    get(app, "/twice", headers={"Authorization": f"Bearer {token}"})
    assert len(calls) == 2  # once per request, not once per process


def test_optional(app: Flask, alice: Any) -> None:
    assert get(app, "/maybe").get_json() == {"sub": None, "claims": {}}
    r = get(app, "/maybe", headers={"Authorization": f"Bearer {issue(app, alice)}"})
    claims = r.get_json()["claims"]
    assert r.get_json()["sub"] == alice.id and claims["fresh"] is True and {"jti", "sid", "exp", "iat"} <= set(claims)
    assert get(app, "/maybe", headers={"Authorization": "Bearer x.y.z"}).status_code == 401  # a bad token is no "none"


def test_fresh_required(app: Flask, alice: Any, clock: ManualClock) -> None:
    stale = issue(app, alice, fresh=False)
    r = get(app, "/fresh", method="POST", headers={"Authorization": f"Bearer {stale}"})
    assert r.status_code == 401
    assert 'error="insufficient_user_authentication"' in r.headers["WWW-Authenticate"]  # RFC 9470
    assert r.get_json()["error"]["code"] == "fresh_token_required"
    fresh = issue(app, alice, fresh=True)
    assert get(app, "/fresh", method="POST", headers={"Authorization": f"Bearer {fresh}"}).status_code == 200


def test_valid_token_without_the_scope_is_403_insufficient_scope(app: Flask, alice: Any) -> None:
    r = get(app, "/admin", headers={"Authorization": f"Bearer {issue(app, alice)}"})
    assert r.status_code == 403
    assert 'error="insufficient_scope"' in r.headers["WWW-Authenticate"]
    assert 'scope="admin"' in r.headers["WWW-Authenticate"]
    r = get(app, "/admin", headers={"Authorization": f"Bearer {issue(app, alice, scope='read administrator')}"})
    assert r.status_code == 403  # no substring match
    admin_token = issue(app, alice, scope="read admin")
    assert get(app, "/admin", headers={"Authorization": f"Bearer {admin_token}"}).status_code == 200


def test_bad_decorator_arguments_fail_at_decoration() -> None:
    with pytest.raises(ValueError):
        jwt_required(locations=("query_string",))
    with pytest.raises(ValueError):
        jwt_required(scopes=["two words"])


# -- cookies for browser apps --------------------------------------------------------------------

def cookies_from(response: Any) -> dict[str, str]:
    jar: dict[str, str] = {}
    for header in response.headers.getlist("Set-Cookie"):
        parsed = SimpleCookie()
        parsed.load(header)
        for name, morsel in parsed.items():
            jar[name] = morsel.value
    return jar


def test_access_cookies_attributes(app: Flask, alice: Any) -> None:
    r = app.test_client(use_cookies=False).post("/cookie-login", base_url=BASE)
    headers = {h.split("=", 1)[0]: h.lower() for h in r.headers.getlist("Set-Cookie")}
    access, csrf = headers[ACCESS_COOKIE], headers[CSRF_ACCESS_COOKIE]
    for h in (access, csrf):
        assert "secure" in h and "path=/" in h and "samesite=strict" in h and "domain" not in h
    assert "httponly" in access and "httponly" not in csrf


def spa(app: Flask, cookies: dict[str, str], *, method: str = "POST", headers: dict[str, str] | None = None) -> Any:
    cookie = "; ".join(f"{k}={v}" for k, v in cookies.items())
    return get(app, "/spa", method=method, headers={"Cookie": cookie, **(headers or {})})


def test_cookie_token_get_needs_no_csrf_but_unsafe_methods_do(app: Flask, alice: Any) -> None:
    jar = cookies_from(app.test_client(use_cookies=False).post("/cookie-login", base_url=BASE))
    assert spa(app, jar, method="GET").status_code == 200
    refused = spa(app, jar)  # no X-CSRF-Token
    assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "csrf_failed"
    ok = spa(app, jar, headers={"X-CSRF-Token": jar[CSRF_ACCESS_COOKIE]})
    assert ok.status_code == 200 and ok.get_json() == {"user": "alice"}


def test_double_submit_value_is_bound_to_the_token(app: Flask, alice: Any) -> None:
    """An attacker who can plant cookies (a sibling subdomain) may set an equal cookie/header pair, or the CSRF
    value of their own token: neither matches the victim's token."""
    client = app.test_client(use_cookies=False)
    jar = cookies_from(client.post("/cookie-login", base_url=BASE))
    forged = secrets.token_urlsafe(32)
    r = spa(app, {ACCESS_COOKIE: jar[ACCESS_COOKIE], CSRF_ACCESS_COOKIE: forged}, headers={"X-CSRF-Token": forged})
    assert r.status_code == 403
    other = cookies_from(client.post("/cookie-login", base_url=BASE))  # another token (another jti)
    mixed = {ACCESS_COOKIE: jar[ACCESS_COOKIE], CSRF_ACCESS_COOKIE: other[CSRF_ACCESS_COOKIE]}
    assert spa(app, mixed, headers={"X-CSRF-Token": other[CSRF_ACCESS_COOKIE]}).status_code == 403
    # header right, cookie missing: the double submit needs both
    r = spa(app, {ACCESS_COOKIE: jar[ACCESS_COOKIE]}, headers={"X-CSRF-Token": jar[CSRF_ACCESS_COOKIE]})
    assert r.status_code == 403


def test_cookie_token_cross_site_post_refused_even_with_the_right_value(app: Flask, alice: Any) -> None:
    jar = cookies_from(app.test_client(use_cookies=False).post("/cookie-login", base_url=BASE))
    r = spa(app, jar, headers={"X-CSRF-Token": jar[CSRF_ACCESS_COOKIE], "Origin": "https://attacker.test"})
    assert r.status_code == 403


def test_two_access_cookies_are_refused(app: Flask, alice: Any) -> None:
    jar = cookies_from(app.test_client(use_cookies=False).post("/cookie-login", base_url=BASE))
    cookie = f"{ACCESS_COOKIE}={jar[ACCESS_COOKIE]}; {ACCESS_COOKIE}={jar[ACCESS_COOKIE]}"
    assert get(app, "/spa", headers={"Cookie": cookie}).status_code == 401


def test_header_only_views_ignore_the_cookie(app: Flask, alice: Any) -> None:
    jar = cookies_from(app.test_client(use_cookies=False).post("/cookie-login", base_url=BASE))
    assert get(app, "/me", headers={"Cookie": f"{ACCESS_COOKIE}={jar[ACCESS_COOKIE]}"}).status_code == 401
