"""WebSockets on the ASGI adapter: a handshake gets the session context (`CurrentUser` on a websocket route), a
handshake that carries cookies must be same-origin or trusted (cross-site WebSocket hijacking, ASVS 5.0 4.4.2),
a signed-out or revoked session is refused before the socket is accepted; and `requires_login` guards plain
Starlette endpoints."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from asgiapp import BASE, PASSWORD, add_user, client, login, make_app, settings  # type: ignore[import-not-found]
from fastapi import WebSocket
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient, WebSocketDenialResponse
from starlette.websockets import WebSocketDisconnect

from sessionward.asgi import CurrentUser, OptionalUser, Sessionward, csrf_exempt, login_user, requires_login, state
from sessionward.clock import ManualClock
from sessionward.passwords import Argon2idHasher

SESSION = "__Host-session"
WS_URL = "wss://app.test/ws/me"
SAME_ORIGIN = {"Origin": BASE}


def ws_app(tmp_path: Any, **extra: Any) -> Any:
    app = make_app(tmp_path, **extra)

    @app.websocket("/ws/me")
    async def ws_me(websocket: WebSocket, user: CurrentUser) -> None:
        await websocket.accept()
        await websocket.send_json({"user": user.username})
        await websocket.close()

    @app.websocket("/ws/public")
    async def ws_public(websocket: WebSocket, user: OptionalUser) -> None:
        await websocket.accept()
        await websocket.send_json({"user": user.username if user else None})
        await websocket.close()

    return app


@pytest.fixture
def wsc(tmp_path):
    with client(ws_app(tmp_path, SESSIONWARD_TRUSTED_ORIGINS="https://partner.test")) as c:
        add_user(c)
        yield c


def cookie_header(c: TestClient) -> dict[str, str]:
    """The session cookie as a header (the handshake goes to a wss:// URL, which the test client's jar skips)."""
    login(c)
    return {"Cookie": f"{SESSION}={c.cookies[SESSION]}"}


def refused_code(c: TestClient, url: str, headers: dict[str, str]) -> int:
    """The close code of a handshake refused before it was accepted (the test client raises on it)."""
    with pytest.raises(WebSocketDisconnect) as refused, c.websocket_connect(url, headers=headers) as ws:
        ws.receive_json()
    return refused.value.code


def test_a_signed_in_browser_gets_its_user_on_a_websocket(wsc):
    with wsc.websocket_connect(WS_URL, headers={**cookie_header(wsc), **SAME_ORIGIN}) as ws:
        assert ws.receive_json() == {"user": "alice"}


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.test"},
        {"Origin": "null"},
        {"Origin": "http://app.test"},  # another scheme is another origin
        {"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.test"},
        {"Sec-Fetch-Site": "same-site", "Origin": "https://sub.app.test"},
    ],
)
def test_a_cross_site_handshake_with_cookies_is_refused_before_accept(wsc, headers):
    """Cross-site WebSocket hijacking: a page elsewhere opening a socket to us with the visitor's cookies is
    closed with 1008 (HTTP 403 from a real server) before the endpoint runs, on a public route too."""
    cookies = cookie_header(wsc)
    for url in (WS_URL, "wss://app.test/ws/public"):
        assert refused_code(wsc, url, {**cookies, **headers}) == 1008


def test_a_trusted_origin_and_a_same_origin_fetch_site_pass(wsc):
    cookies = cookie_header(wsc)
    for headers in ({"Origin": "https://partner.test"}, {"Sec-Fetch-Site": "same-origin", "Origin": BASE}):
        with wsc.websocket_connect(WS_URL, headers={**cookies, **headers}) as ws:
            assert ws.receive_json() == {"user": "alice"}


def test_a_handshake_without_cookies_is_left_to_the_app(wsc):
    """No cookie, no ambient credential to hijack: a public socket may be opened from any origin."""
    with wsc.websocket_connect("wss://app.test/ws/public", headers={"Origin": "https://evil.test"}) as ws:
        assert ws.receive_json() == {"user": None}


def test_a_websocket_route_needing_a_user_refuses_the_signed_out(wsc):
    assert refused_code(wsc, WS_URL, SAME_ORIGIN) == 1008  # no cookie
    made_up = {"Cookie": f"{SESSION}={secrets.token_urlsafe(32)}", **SAME_ORIGIN}
    assert refused_code(wsc, WS_URL, made_up) == 1008


def test_a_logged_out_session_cannot_open_a_websocket(wsc):
    """Server-side logout ends the session for sockets too: the old cookie opens nothing."""
    cookies = cookie_header(wsc)
    token = wsc.get("/token").json()["csrf_token"]
    assert wsc.post("/logout", headers={"X-CSRF-Token": token}).status_code == 200
    assert refused_code(wsc, WS_URL, {**cookies, **SAME_ORIGIN}) == 1008


def test_store_down_refuses_the_handshake(tmp_path):
    """Fail closed: no session context can be had, so a socket needing a user is never accepted; the handshake
    is answered 503 like any request (a WebSocket denial response)."""
    app = ws_app(tmp_path, SESSIONWARD_STORE_URL="redis://127.0.0.1:9/0")  # nothing listens on port 9
    with client(app) as c:
        headers = {"Cookie": f"{SESSION}={secrets.token_urlsafe(32)}", "Accept": "application/json", **SAME_ORIGIN}
        with pytest.raises(WebSocketDenialResponse) as refused, c.websocket_connect(WS_URL, headers=headers) as ws:
            ws.receive_json()
        assert refused.value.status_code == 503
        assert refused.value.json()["error"]["code"] == "store_unavailable"


# -- plain Starlette -----------------------------------------------------------------------------------

def starlette_app(tmp_path: Any) -> Starlette:
    @requires_login
    async def private(request: Request) -> Response:
        return JSONResponse({"ok": True})

    @csrf_exempt
    async def sign_in(request: Request) -> Response:
        st = state(request)
        user = await st.users.get_by_username("alice") or await st.users.create("alice", "starlette passphrase 1")
        await login_user(request, user)
        return JSONResponse({"user": user.username})

    app = Starlette(routes=[Route("/private", private), Route("/api/private", private),
                            Route("/sign-in", sign_in, methods=["POST"])])
    Sessionward(app, settings(tmp_path), clock=ManualClock(), hasher=Argon2idHasher.insecure_for_tests())
    return app


def test_requires_login_guards_a_plain_starlette_endpoint(tmp_path):
    with client(starlette_app(tmp_path)) as c:
        r = c.get("/private?x=1")
        assert r.status_code == 303 and r.headers["location"] == "/login?next=/private%3Fx%3D1"
        r = c.get("/api/private")
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
        assert "Bearer" in r.headers["WWW-Authenticate"]
        assert c.post("/sign-in", headers={"Origin": BASE}).status_code == 200
        assert c.get("/private").json() == {"ok": True}
        assert c.get("/api/private").json() == {"ok": True}


# -- a real server ------------------------------------------------------------------------------------

def test_uvicorn_answers_a_refused_handshake_with_403_and_serves_a_same_origin_one(tmp_path):
    """Over a real socket (uvicorn, the `websockets` client): the close before accept reaches a browser as HTTP 403
    for a cross-site handshake with the session cookie, and a same-origin one gets its user."""
    import json
    import re
    import threading
    import time
    import urllib.parse
    import urllib.request

    import uvicorn
    from _services import free_port  # type: ignore[import-not-found]
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    app = ws_app(tmp_path)
    _add_user(app, tmp_path)  # before the server's loop opens the stores (they belong to that loop)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.started, "uvicorn did not start"
        opener = urllib.request.build_opener()
        form = opener.open(f"{base}/login")
        nonce = re.search(r"__Host-login-csrf=([^;]+)", form.headers["set-cookie"])[1]  # type: ignore[index]
        token = json.loads(form.read())["csrf_token"]
        body = urllib.parse.urlencode({"username": "alice", "password": PASSWORD, "csrf_token": token}).encode()
        login = urllib.request.Request(f"{base}/login", data=body, headers={
            "Cookie": f"__Host-login-csrf={nonce}", "Origin": base,
            "Content-Type": "application/x-www-form-urlencoded"})
        answer = opener.open(login)
        session = re.search(rf"{SESSION}=([^;]+)", answer.headers["set-cookie"])[1]  # type: ignore[index]
        cookie = {"Cookie": f"{SESSION}={session}"}
        url = f"ws://127.0.0.1:{port}/ws/me"
        with pytest.raises(InvalidStatus) as refused:
            connect(url, additional_headers={**cookie, "Origin": "https://evil.test"}, open_timeout=5)
        assert refused.value.response.status_code == 403
        with connect(url, additional_headers={**cookie, "Origin": base}, open_timeout=5) as ws:
            assert json.loads(ws.recv(timeout=5)) == {"user": "alice"}
    finally:
        server.should_exit = True
        thread.join(10)


def _add_user(app: Any, tmp_path: Any) -> None:
    """alice, written to the app's database through a sync user store of its own."""
    from sessionward import db
    from sessionward.clock import SystemClock
    from sessionward.passwords import PasswordPolicy
    from sessionward.users import UserStore

    engine = db.make_engine(f"sqlite:///{tmp_path / 'sw.db'}")
    users = UserStore.open(engine, hasher=Argon2idHasher.insecure_for_tests(), policy=PasswordPolicy(),
                           clock=SystemClock())
    try:
        users.create("alice", PASSWORD)
    finally:
        users.close()
        engine.dispose()
