"""The Flask and the ASGI service answer alike: the same request sequence (pages, forms with CSRF, the JSON API
with its errors and challenges, throttling, body limits) against both, comparing status codes, the key headers,
cookies by name and attributes, JSON bodies and whole HTML pages (CSRF tokens and per-instance ids aside)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from asgiweb import PASSWORD, AsgiDriver, FlaskDriver, both, form_token, summary  # type: ignore[import-not-found]

JSON = {"Accept": "application/json"}
Driver = FlaskDriver | AsgiDriver


@pytest.fixture
def drivers(tmp_path):
    flask, asgi = both(tmp_path)
    flask.add_user("alice")
    asgi.add_user("alice")
    yield flask, asgi
    asgi.close()


def web_sequence(d: Driver) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []

    def step(label: str, method: str, path: str, **kwargs: Any) -> Any:
        answer = d.send(method, path, **kwargs)
        out.append((label, summary(answer)))
        return answer

    step("index", "GET", "/")
    step("protected page, signed out", "GET", "/dashboard?tab=1")
    step("protected page, signed out, API client", "GET", "/dashboard", headers=JSON)
    page = step("login form", "GET", "/login?next=/sessions")
    token = form_token(page)
    step("login without token", "POST", "/login", form={"username": "alice", "password": PASSWORD})
    step("login cross-site", "POST", "/login", form={"username": "alice", "password": PASSWORD, "csrf_token": token},
         headers={"Origin": "https://evil.example"})
    step("wrong password", "POST", "/login", form={"username": "alice", "password": "nope", "csrf_token": token})
    step("unknown user", "POST", "/login", form={"username": "bob", "password": "nope", "csrf_token": token})
    step("control character", "POST", "/login", form={"username": "a\x1bb", "password": "x", "csrf_token": token})
    step("login", "POST", "/login",
         form={"username": "alice", "password": PASSWORD, "csrf_token": token, "next": "//evil.example"})
    step("login page when signed in", "GET", "/login")
    dash = step("dashboard", "GET", "/dashboard")
    token = form_token(dash)
    step("sessions", "GET", "/sessions")
    step("end others without token", "POST", "/sessions/end-others")
    step("end others", "POST", "/sessions/end-others", form={"csrf_token": token})
    step("end unknown session", "POST", "/sessions/AAAAAAAAAAAAAAAAAAAAAA/end", form={"csrf_token": token})
    step("end bad id", "POST", "/sessions/x~y/end", form={"csrf_token": token})
    step("reauth page", "GET", "/reauth?next=/password")
    step("reauth wrong", "POST", "/reauth", form={"csrf_token": token, "password": "nope"})
    step("reauth", "POST", "/reauth?next=/password", form={"csrf_token": token, "password": PASSWORD})
    token = form_token(step("password page", "GET", "/password"))
    step("password mismatch", "POST", "/password", form={
        "csrf_token": token, "current_password": PASSWORD, "new_password": "a Brand-new passphrase 2",
        "confirm_password": "another"})
    step("password weak", "POST", "/password", form={
        "csrf_token": token, "current_password": PASSWORD, "new_password": "password", "confirm_password": "password"})
    step("password changed", "POST", "/password", form={
        "csrf_token": token, "current_password": PASSWORD, "new_password": "a Brand-new passphrase 2",
        "confirm_password": "a Brand-new passphrase 2"})
    token = form_token(step("sessions after change", "GET", "/sessions?done=password"))
    step("not found page", "GET", "/nowhere")
    step("not found, API client", "GET", "/nowhere", headers=JSON)
    step("wrong method", "PUT", "/dashboard", headers=JSON)
    step("trailing slash", "GET", "/dashboard/")
    step("logout without token", "POST", "/logout")
    step("logout", "POST", "/logout", form={"csrf_token": token})
    step("after logout", "GET", "/dashboard")
    step("healthz", "GET", "/healthz")
    step("static", "GET", "/static/style.css")
    return out


def api_sequence(d: Driver) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []

    def step(label: str, method: str, path: str, **kwargs: Any) -> Any:
        answer = d.send(method, path, **kwargs)
        out.append((label, summary(answer)))
        return answer

    step("malformed JSON", "POST", "/api/login", content=b"{", headers={"Content-Type": "application/json"})
    step("duplicate keys", "POST", "/api/login", content=b'{"username": "a", "username": "b", "password": "x"}',
         headers={"Content-Type": "application/json"})
    step("not JSON", "POST", "/api/login", content=b"username=a", headers={"Content-Type": "text/plain"})
    step("wrong type", "POST", "/api/login", json={"username": 1, "password": "x"})
    step("unknown field", "POST", "/api/login", json={"username": "a", "password": "x", "admin": "yes"})
    step("missing field", "POST", "/api/login", json={"username": "a"})
    step("not an object", "POST", "/api/login", json=["a"])
    step("too large", "POST", "/api/login", content=b'{"username": "' + b"a" * 70_000 + b'"}',
         headers={"Content-Type": "application/json"})
    step("wrong password", "POST", "/api/login", json={"username": "alice", "password": "nope"})
    pair = step("login", "POST", "/api/login", json={"username": "alice", "password": PASSWORD}).json()
    auth = {"Authorization": f"Bearer {pair['access_token']}"}
    step("profile without token", "GET", "/api/profile")
    step("profile with Basic", "GET", "/api/profile", headers={"Authorization": "Basic YTpi"})
    step("profile malformed", "GET", "/api/profile", headers={"Authorization": "Bearer a b"})
    step("profile bad token", "GET", "/api/profile", headers={"Authorization": "Bearer abc.def.ghi"})
    step("profile", "GET", "/api/profile", headers=auth)
    step("sessions", "GET", "/api/sessions", headers=auth)
    step("end unknown", "DELETE", "/api/sessions/AAAAAAAAAAAAAAAAAAAAAA", headers=auth)
    step("refresh bad", "POST", "/api/refresh", json={"refresh_token": "nope"})
    new = step("refresh", "POST", "/api/refresh", json={"refresh_token": pair["refresh_token"]}).json()
    step("refresh reused", "POST", "/api/refresh", json={"refresh_token": pair["refresh_token"]})
    step("profile after reuse", "GET", "/api/profile", headers={"Authorization": f"Bearer {new['access_token']}"})
    pair = step("login again", "POST", "/api/login", json={"username": "alice", "password": PASSWORD}).json()
    auth = {"Authorization": f"Bearer {pair['access_token']}"}
    stale = step("refresh again", "POST", "/api/refresh", json={"refresh_token": pair["refresh_token"]}).json()
    stale_auth = {"Authorization": f"Bearer {stale['access_token']}"}
    step("password with a stale token", "POST", "/api/password", headers=stale_auth,
         json={"current_password": PASSWORD, "new_password": "a Brand-new passphrase 2"})
    step("end another with a stale token", "DELETE", "/api/sessions/AAAAAAAAAAAAAAAAAAAAAA", headers=stale_auth)
    fresh = step("login fresh", "POST", "/api/login", json={"username": "alice", "password": PASSWORD}).json()
    fresh_auth = {"Authorization": f"Bearer {fresh['access_token']}"}
    step("password wrong current", "POST", "/api/password", headers=fresh_auth,
         json={"current_password": "nope", "new_password": "a Brand-new passphrase 2"})
    step("password weak", "POST", "/api/password", headers=fresh_auth,
         json={"current_password": PASSWORD, "new_password": "password"})
    step("logout empty body", "POST", "/api/logout", headers=fresh_auth)
    step("profile after logout", "GET", "/api/profile", headers=fresh_auth)
    step("logout-all", "POST", "/api/logout-all", headers=stale_auth)
    step("after logout-all", "GET", "/api/profile", headers=stale_auth)
    step("openapi", "GET", "/api/openapi.json")
    step("jwks", "GET", "/.well-known/jwks.json")
    step("unknown API path", "GET", "/api/nothing")
    step("wrong method", "GET", "/api/login")
    for i in range(6):
        step(f"throttled attempt {i}", "POST", "/api/login", json={"username": "alice", "password": "nope"})
    return out


@pytest.mark.parametrize("sequence", [web_sequence, api_sequence], ids=["pages", "api"])
def test_flask_and_asgi_answer_alike(drivers, sequence: Callable[[Driver], list[tuple[str, Any]]]):
    flask, asgi = drivers
    expected, got = sequence(flask), sequence(asgi)
    for (label, want), (_, have) in zip(expected, got, strict=True):
        assert have == want, f"{label}: {_diff(want, have)}"


def _diff(want: dict[str, Any], have: dict[str, Any]) -> str:
    import difflib

    lines = []
    for key in sorted(set(want) | set(have)):
        if want.get(key) != have.get(key):
            a, b = str(want.get(key)).splitlines(), str(have.get(key)).splitlines()
            lines += [key, *difflib.unified_diff(a, b, "flask", "asgi", lineterm="", n=0)]
    return "\n".join(lines)


def test_the_openapi_document_is_the_flask_apps(drivers):
    flask, asgi = drivers
    assert asgi.send("GET", "/api/openapi.json").json() == flask.send("GET", "/api/openapi.json").json()
