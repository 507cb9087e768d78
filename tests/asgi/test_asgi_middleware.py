"""`SessionwardMiddleware` on a small FastAPI app: the cookie policy, fixation and rotation, server-side
logout, CSRF (synchronizer token, origin checks, login CSRF), security headers, body limits, error shapes."""

from __future__ import annotations

import secrets

import pytest
from asgiapp import (  # type: ignore[import-not-found]
    BASE,
    PASSWORD,
    add_user,
    call,
    client,
    login,
    make_app,
    set_cookie_attrs,
)
from fastapi import FastAPI, Request
from pydantic import BaseModel
from starlette.testclient import TestClient

from sessionward.httpshape import HSTS, STATIC_HEADERS

SESSION = "__Host-session"


class Item(BaseModel):
    name: str


@pytest.fixture
def alice(asgi: TestClient):
    return add_user(asgi)


def session_headers(c: TestClient, **extra: str) -> dict[str, str]:
    """X-CSRF-Token of the current session."""
    return {"X-CSRF-Token": c.get("/token").json()["csrf_token"], **extra}


# -- cookies ------------------------------------------------------------------------------------

def test_C8_session_cookie_attributes(asgi, alice):
    r = login(asgi)
    assert r.status_code == 200 and r.json() == {"user": "alice"}
    attrs = set_cookie_attrs(r, SESSION)
    assert "secure" in attrs and "httponly" in attrs
    assert attrs["path"] == "/" and "domain" not in attrs  # __Host- prefix rules
    assert attrs["samesite"].lower() == "lax"
    assert int(attrs["max-age"]) == 12 * 3600
    assert len(attrs["value"]) >= 40  # 256-bit secret


def test_C8_samesite_strict_configurable(tmp_path):
    with client(make_app(tmp_path, SESSIONWARD_COOKIE_SAMESITE="Strict")) as c:
        add_user(c)
        assert set_cookie_attrs(login(c), SESSION)["samesite"].lower() == "strict"


def test_C2_made_up_cookie_not_adopted_and_expired(asgi, alice):
    asgi.cookies.set(SESSION, secrets.token_urlsafe(32), domain="app.test")
    r = asgi.get("/maybe")
    assert r.json() == {"user": None}
    assert set_cookie_attrs(r, SESSION)["max-age"] == "0"  # the dead cookie is expired


def test_C3_fixation_a_planted_id_is_never_the_session(asgi, alice):
    planted = secrets.token_urlsafe(32)
    asgi.cookies.set(SESSION, planted, domain="app.test")
    r = login(asgi)
    issued = set_cookie_attrs(r, SESSION)["value"]
    assert issued != planted
    attacker = client(asgi.app)
    attacker.cookies.set(SESSION, planted, domain="app.test")
    assert attacker.get("/maybe").json() == {"user": None}
    assert asgi.get("/me").json() == {"user": "alice"}


def test_C3_login_from_a_signed_in_browser_replaces_its_session(asgi, alice):
    from sessionward.asgi import login_user

    login(asgi)
    first = asgi.cookies[SESSION]
    app_state = asgi.app.state.sessionward
    user = call(asgi, app_state.users.get_by_username, "alice")

    @asgi.app.post("/relogin")
    async def relogin(request: Request) -> dict[str, bool]:
        await login_user(request, user)
        return {"ok": True}

    r = asgi.post("/relogin", headers=session_headers(asgi))
    second = set_cookie_attrs(r, SESSION)["value"]
    assert second != first
    stale = client(asgi.app)
    stale.cookies.set(SESSION, first, domain="app.test")
    assert stale.get("/maybe").json() == {"user": None}  # the previous session was deleted
    assert asgi.get("/me").json() == {"user": "alice"}


def test_C9_two_session_cookies_count_as_none(asgi, alice):
    login(asgi)
    value = asgi.cookies[SESSION]
    raw = client(asgi.app)
    r = raw.get("/maybe", headers={"Cookie": f"{SESSION}={value}; {SESSION}={value}"})
    assert r.json() == {"user": None}


def test_C5_logout_clears_cookie_and_ends_the_session_on_the_server(asgi, alice):
    login(asgi)
    value = asgi.cookies[SESSION]
    r = asgi.post("/logout", headers=session_headers(asgi))
    assert r.status_code == 200
    assert set_cookie_attrs(r, SESSION)["max-age"] == "0"
    assert "cookies" in r.headers["Clear-Site-Data"]
    replay = client(asgi.app)
    r = replay.get("/me", headers={"Cookie": f"{SESSION}={value}", "Accept": "application/json"})
    assert r.status_code == 401  # revoked server-side, not just forgotten by the browser


def test_login_required_browser_is_sent_to_login_api_client_gets_401(asgi):
    r = asgi.get("/me?x=1")
    assert r.status_code == 303 and r.headers["location"] == "/login?next=/me%3Fx%3D1"
    r = asgi.get("/me", headers={"Accept": "application/json"})
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "unauthorized"
    assert r.headers["WWW-Authenticate"] == 'Bearer realm="sessionward"'
    r = asgi.post("/change", headers={"Accept": "application/json"})
    assert r.status_code == 401


# -- CSRF ---------------------------------------------------------------------------------------

def test_C10_unsafe_request_with_a_session_needs_the_session_token(asgi, alice):
    login(asgi)
    assert asgi.post("/change").status_code == 403
    r = asgi.post("/change", headers={"X-CSRF-Token": "x" * 43, "Accept": "application/json"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "csrf_failed"
    token = asgi.get("/token").json()["csrf_token"]
    assert asgi.post("/change", headers={"X-CSRF-Token": token}).status_code == 200
    assert asgi.post("/change", data={"csrf_token": token}).status_code == 200  # the form field works too
    files = {"f": ("a.txt", b"x")}
    assert asgi.post("/change", data={"csrf_token": token}, files=files).status_code == 200  # multipart


def test_C10_token_of_another_session_refused(tmp_path, asgi, alice):
    other = client(asgi.app)
    login(other)
    foreign = other.get("/token").json()["csrf_token"]
    login(asgi)
    assert asgi.post("/change", headers={"X-CSRF-Token": foreign}).status_code == 403


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.test"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site", "Origin": "https://sub.app.test"},
    ],
)
def test_C10_cross_site_refused_even_with_the_token(asgi, alice, headers):
    login(asgi)
    r = asgi.post("/change", headers=session_headers(asgi, Accept="application/json", **headers))
    assert r.status_code == 403 and r.json()["error"]["code"] == "csrf_failed"
    assert asgi.post("/public", headers=headers).status_code == 403  # even without a session


def test_C10_same_origin_passes(asgi, alice):
    login(asgi)
    r = asgi.post("/change", headers=session_headers(asgi, Origin=BASE, **{"Sec-Fetch-Site": "same-origin"}))
    assert r.status_code == 200


def test_C10_login_csrf_needs_the_pre_session_token(asgi, alice):
    form = {"username": "alice", "password": PASSWORD}
    assert asgi.post("/login", data=form).status_code == 403  # no token
    r = asgi.get("/login")
    attrs = set_cookie_attrs(r, "__Host-login-csrf")
    assert "secure" in attrs and "httponly" in attrs and attrs["path"] == "/"
    assert r.headers["Cache-Control"] == "no-store"
    token = r.json()["csrf_token"]
    fresh = client(asgi.app)  # the token without its nonce cookie (an attacker's own token)
    assert fresh.post("/login", data={**form, "csrf_token": token}).status_code == 403
    assert asgi.post("/login", data={**form, "csrf_token": "A" * 43}).status_code == 403
    assert asgi.post("/login", data={**form, "csrf_token": token}, headers={"Origin": "https://evil.test"}
                     ).status_code == 403
    assert asgi.post("/login", data={**form, "csrf_token": token}).status_code == 200


# -- headers ------------------------------------------------------------------------------------

def test_C11_security_headers_on_every_answer(asgi, alice):
    for r in (asgi.get("/maybe"), asgi.get("/nowhere"), asgi.post("/public", headers={"Origin": "https://x.test"})):
        for name, value in STATIC_HEADERS.items():
            assert r.headers[name] == value, (r.status_code, name)
        assert r.headers["Strict-Transport-Security"] == HSTS
    plain = TestClient(asgi.app, base_url="http://app.test")
    assert "Strict-Transport-Security" not in plain.get("/maybe").headers  # HSTS only over TLS


def test_C11_authenticated_answers_are_no_store_and_vary_cookie(asgi, alice):
    assert "no-store" not in asgi.get("/maybe").headers.get("Cache-Control", "")
    login(asgi)
    r = asgi.get("/me")
    assert r.headers["Cache-Control"] == "no-store" and r.headers["Pragma"] == "no-cache"
    assert "Cookie" in r.headers["Vary"]


# -- body and errors ----------------------------------------------------------------------------

def test_O5_body_past_the_limit_is_413_declared_or_chunked(asgi):
    assert asgi.post("/echo", content=b"x" * 1024).json() == {"size": 1024}
    r = asgi.post("/echo", content=b"x" * 1025, headers={"Accept": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_entity_too_large"

    def chunks():
        for _ in range(10):
            yield b"y" * 200

    r = asgi.post("/echo", content=chunks(), headers={"Accept": "application/json"})
    assert r.status_code == 413
    r = asgi.post("/echo", content=iter([b"z" * 100] * 3))
    assert r.status_code == 200 and r.json() == {"size": 300}  # a chunked body within the limit arrives whole


def test_bad_content_length_is_400_never_500(asgi):
    import anyio

    sent: list[dict] = []

    async def run() -> None:
        scope = {
            "type": "http", "method": "POST", "path": "/echo", "raw_path": b"/echo", "query_string": b"",
            "headers": [(b"host", b"app.test"), (b"content-length", b"12x")], "scheme": "https",
            "client": ("127.0.0.1", 1), "server": ("app.test", 443), "http_version": "1.1", "root_path": "",
            "app": asgi.app,
        }

        async def receive() -> dict:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict) -> None:
            sent.append(message)

        await asgi.app(scope, receive, send)

    anyio.run(run)
    assert sent[0]["status"] == 400


def test_bad_json_to_a_typed_body_is_4xx_in_the_one_shape(tmp_path):
    app = make_app(tmp_path)

    @app.post("/items")
    async def create(item: Item) -> dict[str, str]:
        return {"name": item.name}

    with client(app) as c:
        for body in (b"{", b"[]", b'{"name": 1}', b"\xff"):
            r = c.post("/items", content=body, headers={"Content-Type": "application/json"})
            assert 400 <= r.status_code < 500, body
            assert set(r.json()) == {"error"} and set(r.json()["error"]) == {"code", "message"}
        assert c.post("/items", json={"name": "a"}).json() == {"name": "a"}


def test_unexpected_error_is_500_without_a_traceback(tmp_path):
    app = make_app(tmp_path)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret detail")

    with TestClient(app, base_url=BASE, raise_server_exceptions=False) as c:
        r = c.get("/boom", headers={"Accept": "application/json"})
        assert r.status_code == 500
        assert r.json() == {"error": {"code": "internal_error", "message": "Something went wrong on our side."}}
        assert r.headers["X-Frame-Options"] == "DENY"


def test_O2_store_down_is_503_never_access(tmp_path):
    """A session store that cannot be reached: a request with a session cookie is 503 (never let in, never a
    500), also when the CSRF check is the one that needs the store."""
    app = make_app(tmp_path, SESSIONWARD_STORE_URL="redis://127.0.0.1:9/0")  # nothing listens on port 9
    with client(app) as c:
        c.cookies.set(SESSION, secrets.token_urlsafe(32), domain="app.test")
        for method, path in (("GET", "/me"), ("POST", "/change"), ("GET", "/maybe")):
            r = c.request(method, path, headers={"Accept": "application/json", "X-CSRF-Token": "t"})
            assert r.status_code == 503, (path, r.status_code, r.text)
            assert r.json()["error"]["code"] == "store_unavailable"
            assert r.headers["Retry-After"].isdigit()


def test_not_installed_is_a_clear_error():
    from starlette.requests import Request

    from sessionward.asgi import context

    with pytest.raises(RuntimeError, match="SessionwardMiddleware"):
        context(Request({"type": "http", "headers": []}))


def test_settings_validated_at_start_up_naming_the_setting(tmp_path):
    from sessionward.exceptions import ConfigError

    with pytest.raises(ConfigError, match="SESSIONWARD_CSRF_KEY"):
        make_app(tmp_path, SESSIONWARD_CSRF_KEY=b"short")
    with pytest.raises(ConfigError, match="SESSIONWARD_STORE_URL"):
        make_app(tmp_path, SESSIONWARD_STORE_URL="")


def test_lifespan_opens_and_closes_the_stores(tmp_path):
    app: FastAPI = make_app(tmp_path)
    st = app.state.sessionward
    assert st.store is None  # nothing is opened before the app's event loop runs
    closed: list[str] = []
    with client(app) as c:
        assert st.store is not None and st.users is not None
        for name in ("store", "users"):
            obj = getattr(st, name)
            original = obj.close

            async def close(original=original, name=name) -> None:
                closed.append(name)
                await original()

            obj.close = close
        assert c.get("/maybe").status_code == 200
        assert not closed
    assert sorted(closed) == ["store", "users"]


def test_without_lifespan_the_first_request_opens_the_stores(tmp_path):
    import asyncio

    import httpx

    app = make_app(tmp_path)

    async def run() -> int:
        transport = httpx.ASGITransport(app=app)  # runs no lifespan
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as c:
            status = (await c.get("/maybe")).status_code
        await app.state.sessionward.aclose()
        return status

    assert asyncio.run(run()) == 200
