"""Bearer tokens on ASGI (`RequireToken`): strict Authorization parsing, the RFC 6750 / RFC 9470 answers with
the realm in every challenge, fresh and scopes, revocation honoured, the cookie location's double submit, and
the bearer scheme in FastAPI's OpenAPI document."""

from __future__ import annotations

from typing import Annotated, Any

import pytest
from asgiapp import BASE, add_user, call, client, login, make_app  # type: ignore[import-not-found]
from fastapi import Request
from starlette.responses import JSONResponse
from starlette.testclient import TestClient

from sessionward.asgi import RequireToken, set_access_cookies
from sessionward.tokens import Claims

JSON = {"Accept": "application/json"}


@pytest.fixture
def alice(asgi: TestClient):
    return add_user(asgi)


def issue(c: TestClient, user: Any, *, fresh: bool = True, **extra: Any) -> Any:
    tokens = c.app.state.sessionward.token_service()  # type: ignore[attr-defined]
    return call(c, tokens.issue, user.id, fresh=fresh, extra_claims=extra or None)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **JSON}


def test_no_token_is_401_with_the_bare_challenge(asgi):
    r = asgi.get("/api/items", headers=JSON)
    assert r.status_code == 401  # both schemes under the default DPoP `allowed` (RFC 9449 7.2), no error code
    assert r.headers["WWW-Authenticate"] == 'Bearer realm="sessionward", DPoP algs="ES256 Ed25519 EdDSA"'
    assert r.json()["error"]["code"] == "authorization_required"
    basic = asgi.get("/api/items", headers={"Authorization": "Basic YTpi", **JSON})
    assert basic.status_code == 401  # another scheme is no bearer credential


@pytest.mark.parametrize("value", ["Bearer", "Bearer ", "Bearer a b", "Bearer\tabc", "Bearer  abc", "bearer a,b"])
def test_malformed_authorization_is_400_invalid_request(asgi, value):
    r = asgi.get("/api/items", headers={"Authorization": value, **JSON})
    assert r.status_code == 400, value
    assert r.headers["WWW-Authenticate"] == 'Bearer realm="sessionward", error="invalid_request"'


def test_bad_token_is_401_invalid_token(asgi, alice):
    r = asgi.get("/api/items", headers=bearer("abc.def.ghi"))
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == 'Bearer realm="sessionward", error="invalid_token"'
    assert r.json()["error"]["code"] == "invalid_token"


def test_scopes_403_insufficient_scope_then_allowed(asgi, alice):
    r = asgi.get("/api/items", headers=bearer(issue(asgi, alice).access_token))
    assert r.status_code == 403
    challenge = r.headers["WWW-Authenticate"]
    assert 'realm="sessionward"' in challenge and 'error="insufficient_scope"' in challenge
    assert 'scope="items:read"' in challenge
    ok = asgi.get("/api/items", headers=bearer(issue(asgi, alice, scope="items:read other").access_token))
    assert ok.status_code == 200 and ok.json() == {"sub": alice.id}
    assert ok.headers["Cache-Control"] == "no-store"


def test_fresh_needs_a_password_login(asgi, alice):
    stale = issue(asgi, alice, fresh=False).access_token
    r = asgi.post("/api/admin", headers=bearer(stale))
    assert r.status_code == 401
    challenge = r.headers["WWW-Authenticate"]
    assert 'realm="sessionward"' in challenge and 'error="insufficient_user_authentication"' in challenge
    assert asgi.post("/api/admin", headers=bearer(issue(asgi, alice).access_token)).json() == {"fresh": True}


def test_revocation_is_honoured(asgi, alice):
    pair = issue(asgi, alice)
    assert asgi.get("/api/optional", headers=bearer(pair.access_token)).json() == {"sub": alice.id}
    tokens = asgi.app.state.sessionward.token_service()
    call(asgi, tokens.revoke, pair.family_id)
    r = asgi.get("/api/me", headers=bearer(pair.access_token))
    assert r.status_code == 401 and 'error="invalid_token"' in r.headers["WWW-Authenticate"]
    other = issue(asgi, alice)
    call(asgi, tokens.revoke_all, alice.id)  # log out everywhere: every token of the user
    assert asgi.get("/api/me", headers=bearer(other.access_token)).status_code == 401


def test_disabled_user_token_refused(asgi, alice):
    pair = issue(asgi, alice)
    users = asgi.app.state.sessionward.users
    call(asgi, users.set_disabled, alice.id, True)
    assert asgi.get("/api/me", headers=bearer(pair.access_token)).status_code == 401


def test_token_user_is_the_current_user(asgi, alice):
    r = asgi.get("/api/me", headers=bearer(issue(asgi, alice).access_token))
    assert r.status_code == 200 and r.json()["user"] == "alice"


def test_a_session_and_a_token_of_two_users_never_mix(asgi, alice):
    """A view that takes the cookie session's user before the token (`CurrentUser` declared first) is refused
    when the token names another user: it never runs with one user and another's token."""
    bob = add_user(asgi, "bob")
    login(asgi)  # the browser's session is alice's
    r = asgi.get("/api/me-first", headers=bearer(issue(asgi, bob).access_token))
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_token", r.text
    r = asgi.get("/api/me-first", headers=bearer(issue(asgi, alice).access_token))  # the same user: fine
    assert r.status_code == 200 and r.json()["user"] == "alice"
    r = asgi.get("/api/me", headers=bearer(issue(asgi, bob).access_token))  # token first: the token's user
    assert r.status_code == 200 and r.json()["user"] == "bob"


def test_optional_token(asgi, alice):
    assert asgi.get("/api/optional", headers=JSON).json() == {"sub": None}
    assert asgi.get("/api/optional", headers=bearer("x.y.z")).status_code == 401  # a bad one is still refused


def test_bearer_routes_need_no_session_csrf_token(asgi, alice):
    """A browser never attaches an Authorization header by itself: with a session cookie present, a header-token
    route is not subject to the session's synchronizer token (as on Flask)."""
    login(asgi)
    assert asgi.post("/change", headers=JSON).status_code == 403  # the session route still is
    r = asgi.post("/api/admin", headers=bearer(issue(asgi, alice).access_token))
    assert r.status_code == 200


def test_cookie_token_on_unsafe_request_needs_the_bound_double_submit(asgi, alice):
    from sessionward.asgi.tokens import ACCESS_COOKIE, CSRF_ACCESS_COOKIE

    pair = issue(asgi, alice)
    st = asgi.app.state.sessionward
    claims = call(asgi, st.token_service().verify_access, pair.access_token)
    good = st.csrf.access_cookie_token(claims.jti)
    c = client(asgi.app)
    c.cookies.set(ACCESS_COOKIE, pair.access_token, domain="app.test")
    c.cookies.set(CSRF_ACCESS_COOKIE, good, domain="app.test")
    assert c.post("/api/write", headers=JSON).status_code == 403  # no header
    assert c.post("/api/write", headers={"X-CSRF-Token": "x" * 43, **JSON}).status_code == 403
    r = c.post("/api/write", headers={"X-CSRF-Token": good, "Origin": "https://evil.test", **JSON})
    assert r.status_code == 403
    assert c.post("/api/write", headers={"X-CSRF-Token": good, **JSON}).json() == {"sub": alice.id}
    tossed = client(asgi.app)
    cookie = f"{ACCESS_COOKIE}={pair.access_token}; {ACCESS_COOKIE}={pair.access_token}"
    assert tossed.post("/api/write", headers={"Cookie": cookie, **JSON}).status_code == 401


def test_set_access_cookies_attributes(asgi, alice):
    pair = issue(asgi, alice)

    @asgi.app.get("/spa-login")
    async def spa_login(request: Request) -> Any:
        return await set_access_cookies(request, JSONResponse({"ok": True}), pair.access_token)

    r = asgi.get("/spa-login")
    cookies = r.headers.get_list("set-cookie")
    access = next(c for c in cookies if c.startswith("__Host-access="))
    readable = next(c for c in cookies if c.startswith("__Host-csrf_access="))
    for header in (access, readable):
        assert "Secure" in header and "Path=/" in header and "samesite=strict" in header.lower()
        assert "Domain" not in header
    assert "HttpOnly" in access and "HttpOnly" not in readable


def test_openapi_lists_the_bearer_scheme_on_protected_routes(tmp_path):
    document = make_app(tmp_path).openapi()
    assert document["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
        "description": "An access token from /api/login or /api/refresh (RFC 6750).",
    }
    paths = document["paths"]
    assert paths["/api/items"]["get"]["security"] == [{"bearerAuth": ["items:read"]}]
    assert paths["/api/admin"]["post"]["security"] == [{"bearerAuth": []}]
    assert paths["/api/me"]["get"]["security"] == [{"bearerAuth": []}]
    assert "security" not in paths["/me"]["get"]  # a cookie-session route
    assert "security" not in paths["/public"]["post"]


def test_bad_scopes_or_locations_refused_at_declaration():
    with pytest.raises(ValueError, match="scope"):
        RequireToken(scopes=["has space"])
    with pytest.raises(ValueError, match="locations"):
        RequireToken(locations=["query"])


def test_tokens_not_configured_is_a_clear_error(tmp_path):
    from sessionward.exceptions import ConfigError

    with pytest.raises(ConfigError, match="SESSIONWARD_REFRESH_KEY"):
        make_app(tmp_path, SESSIONWARD_REFRESH_KEY="")
    app = make_app(tmp_path, SESSIONWARD_REFRESH_KEY="", SESSIONWARD_KEK="")
    with TestClient(app, base_url=BASE, raise_server_exceptions=False) as c:
        r = c.get("/api/me", headers={"Authorization": "Bearer abc", **JSON})
        assert r.status_code == 500 and r.json()["error"]["message"] == "Server misconfigured."


def test_included_routers_with_prefix_and_router_dependencies_are_seen(tmp_path):
    """The CSRF exemption of bearer routes is found through `include_router` (prefix, router-level
    dependencies) and Starlette mounts; a session route inside them stays protected."""
    from asgiapp import login as form_login  # type: ignore[import-not-found]
    from fastapi import APIRouter, FastAPI

    app = make_app(tmp_path)
    inner = APIRouter()

    @inner.post("/write")
    async def write(claims: Annotated[Claims, RequireToken()]) -> dict[str, str]:
        return {"sub": claims.sub}

    @inner.post("/session-only")
    async def session_only() -> dict[str, bool]:
        return {"ok": True}

    guarded = APIRouter(dependencies=[RequireToken()])

    @guarded.post("/guarded")
    async def guarded_view() -> dict[str, bool]:
        return {"ok": True}

    app.include_router(inner, prefix="/v1")
    app.include_router(guarded, prefix="/v2")
    sub = FastAPI()
    sub.include_router(inner)
    app.mount("/sub", sub)
    with client(app) as c:
        user = add_user(c)
        form_login(c)  # a session cookie from now on: unsafe session routes need its token
        auth = bearer(issue(c, user).access_token)
        assert c.post("/v1/write", headers=auth).json() == {"sub": user.id}
        assert c.post("/v2/guarded", headers=auth).json() == {"ok": True}
        assert c.post("/v1/session-only", headers=JSON).status_code == 403
        assert c.post("/sub/session-only", headers=JSON).status_code == 403
