"""O4 by property: arbitrary bytes in the Authorization header, in cookies and in JSON bodies never produce a
5xx (and errors keep their one JSON shape). Headers are put straight into the WSGI environ, so values a client
library would refuse (NUL, CR, LF, any latin-1 byte) reach the app too."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sessionward.app import create_app
from sessionward.clock import ManualClock
from sessionward.flask import state

BASE = "https://localhost"
PASSWORD = "correct horse battery staple"
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory: pytest.TempPathFactory) -> Any:
    app = create_app(tmp_path_factory.mktemp("fuzz") / "instance", clock=ManualClock())
    with app.app_context():
        state().users.create("alice", PASSWORD)
    client = app.test_client(use_cookies=False)
    pair = client.post("/api/login", base_url=BASE, json={"username": "alice", "password": PASSWORD}).get_json()
    return app, pair


latin1 = st.binary(max_size=400).map(lambda b: b.decode("latin-1"))


def mutated(token: str) -> st.SearchStrategy[str]:
    """A real token with a few characters changed, cut or extended."""
    positions = st.integers(min_value=0, max_value=len(token) - 1)
    chars = st.characters(min_codepoint=0, max_codepoint=255)
    flip = st.tuples(positions, chars).map(lambda pc: token[: pc[0]] + pc[1] + token[pc[0] + 1:])
    cut = positions.map(lambda p: token[:p])
    grow = latin1.map(lambda extra: token + extra)
    return st.one_of(flip, cut, grow)


def check(response: Any) -> None:
    assert response.status_code < 500, (response.status_code, response.get_data(as_text=True)[:300])
    if response.status_code >= 400 and response.mimetype == "application/json":
        error = response.get_json()["error"]
        assert isinstance(error["code"], str) and isinstance(error["message"], str)


# Nothing here can end the fixture's token family (no logout, logout-all or valid password change).
ENDPOINTS = [("GET", "/api/profile"), ("GET", "/api/sessions"), ("DELETE", "/api/sessions/x"),
             ("POST", "/api/password")]


def same_token(a: str, b: str) -> bool:
    """Equal after base64url decoding (a changed unused trailing bit of the last character decodes the same)."""
    def decode(t: str) -> list[bytes] | None:
        try:
            return [base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)) for p in t.split(".")]
        except (ValueError, binascii.Error):
            return None
    da = decode(a)
    return da is not None and da == decode(b)


@FUZZ
@given(data=st.data(), endpoint=st.sampled_from(ENDPOINTS))
def test_authorization_header_never_5xx(fuzz_app: Any, data: Any, endpoint: tuple[str, str]) -> None:
    app, pair = fuzz_app
    token = pair["access_token"]
    value = data.draw(st.one_of(
        latin1,
        latin1.map(lambda v: "Bearer " + v),
        mutated(token).map(lambda t: "Bearer " + t),
        mutated("Bearer " + token),
    ))
    method, path = endpoint
    response = app.test_client(use_cookies=False).open(
        path, method=method, base_url=BASE, environ_overrides={"HTTP_AUTHORIZATION": value}
    )
    check(response)
    if 200 <= response.status_code < 300:  # only the real token, never a mangled one, gets in
        assert value[:7].lower() == "bearer " and same_token(value[7:], token), value


@FUZZ
@given(cookie=st.one_of(latin1, latin1.map(lambda v: "__Host-session=" + v),
                        latin1.map(lambda v: "__Host-access=" + v + "; __Host-csrf_access=" + v)),
       path=st.sampled_from(["/", "/dashboard", "/sessions", "/api/profile", "/login"]),
       method=st.sampled_from(["GET", "POST"]))
def test_cookies_never_5xx(fuzz_app: Any, cookie: str, path: str, method: str) -> None:
    app, _ = fuzz_app
    response = app.test_client(use_cookies=False).open(
        path, method=method, base_url=BASE, environ_overrides={"HTTP_COOKIE": cookie}
    )
    check(response)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
FIELDS = ["username", "password", "refresh_token", "current_password", "new_password"]
json_objects = st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), json_values | st.text(), max_size=4)
BODY_PATHS = ["/api/login", "/api/refresh", "/api/logout", "/api/password"]


@FUZZ
@given(body=st.one_of(st.binary(max_size=300), json_values.map(lambda v: json.dumps(v).encode())),
       path=st.sampled_from(BODY_PATHS),
       content_type=st.sampled_from(["application/json", "application/json; charset=utf-8", "text/plain",
                                     "application/x-www-form-urlencoded", "application/merge-patch+json", ""]))
def test_raw_bodies_never_5xx(fuzz_app: Any, body: bytes, path: str, content_type: str) -> None:
    app, pair = fuzz_app
    headers = {"Content-Type": content_type}
    if path == "/api/password":  # random bytes never hold the current password; /api/logout gets no token
        headers["Authorization"] = f"Bearer {pair['access_token']}"
    response = app.test_client(use_cookies=False).post(path, base_url=BASE, data=body, headers=headers)
    check(response)


@FUZZ
@given(body=json_objects, path=st.sampled_from(BODY_PATHS))
def test_json_objects_never_5xx(fuzz_app: Any, body: dict[str, Any], path: str) -> None:
    app, pair = fuzz_app
    # /api/password with a fresh token: an accepted change would end the fixture's token, so the token is
    # given only to endpoints that cannot succeed with random fields (the body lacks a valid refresh token /
    # the current password is random text).
    headers = {"Authorization": f"Bearer {pair['access_token']}"} if path == "/api/password" else {}
    response = app.test_client(use_cookies=False).post(path, base_url=BASE, json=body, headers=headers)
    check(response)
    if path == "/api/password":
        assert response.status_code != 200 or body.get("current_password") == PASSWORD
