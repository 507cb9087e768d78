"""The reference service on ASGI (`create_asgi_app`) beside the Flask one: the same instance folder and secrets,
so a cookie or a token made by one is honoured by the other (SQLite, Redis, PostgreSQL), a revocation on one
holds on the other; settings validated at start-up; fail closed when the store is down; trusted proxies."""

from __future__ import annotations

import time
from typing import Any

import pytest
from asgiweb import PASSWORD, AsgiDriver, FlaskDriver, form_token  # type: ignore[import-not-found]

from sessionward.app import create_app
from sessionward.app.asgi import create_asgi_app
from sessionward.clock import SystemClock
from sessionward.exceptions import ConfigError

COOKIE = "__Host-session"
JSON = {"Accept": "application/json"}


def pair_on(tmp_path: Any, **config: Any) -> tuple[FlaskDriver, AsgiDriver]:
    """The Flask and the ASGI service on ONE instance folder (the same secrets, databases and store)."""
    flask = FlaskDriver(create_app(tmp_path / "inst", clock=SystemClock(), config=config or None))
    asgi = AsgiDriver(create_asgi_app(tmp_path / "inst", clock=SystemClock(), config=config or None))
    return flask, asgi


def login(d: FlaskDriver | AsgiDriver, *, forget: bool = True) -> str:
    """Log in through the form; the session cookie's value (forgotten by the driver unless `forget=False`)."""
    token = form_token(d.send("GET", "/login"))
    r = d.send("POST", "/login", form={"username": "alice", "password": PASSWORD, "csrf_token": token})
    assert r.status == 303, r.status
    cookie = next(v for k, v in r.headers if k == "set-cookie" and v.startswith(COOKIE))
    if forget:
        d.forget_cookies()  # the caller sends the cookie itself, to either server
    return cookie.split(";", 1)[0].split("=", 1)[1]


@pytest.fixture
def own_postgres_url(postgres_url):
    """A database of this test's own (the signing keys are sealed under each instance's KEK)."""
    import secrets

    import psycopg

    name = f"sw_asgi_{secrets.token_hex(6)}"
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield postgres_url.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "redis", "postgres"])
def shared(request, tmp_path):
    config: dict[str, Any] = {}
    if request.param == "redis":
        config = {"SESSIONWARD_STORE_URL": request.getfixturevalue("redis_url"),
                  "SESSIONWARD_REDIS_PREFIX": request.getfixturevalue("redis_prefix")}
    elif request.param == "postgres":
        url = request.getfixturevalue("own_postgres_url")
        config = {"SESSIONWARD_STORE_URL": url, "SESSIONWARD_DATABASE_URL": url}
    flask, asgi = pair_on(tmp_path, **config)
    flask.add_user("alice")
    yield flask, asgi
    asgi.close()


def test_a_cookie_made_by_one_is_honoured_by_the_other_and_logout_ends_it_on_both(shared):
    flask, asgi = shared
    value = login(flask)
    headers = {"Cookie": f"{COOKIE}={value}"}
    r = asgi.send("GET", "/dashboard", headers=headers)
    assert r.status == 200 and "alice" in r.text
    value = login(asgi)
    headers = {"Cookie": f"{COOKIE}={value}"}
    page = flask.send("GET", "/sessions", headers=headers)
    assert page.status == 200
    token = form_token(page)
    assert asgi.send("POST", "/logout", headers=headers, form={"csrf_token": token}).status == 303
    assert flask.send("GET", "/dashboard", headers=headers).status == 303  # ended for both


def test_a_token_issued_by_one_is_honoured_by_the_other_and_revoked_on_both(shared):
    flask, asgi = shared
    pair = asgi.send("POST", "/api/login", json={"username": "alice", "password": PASSWORD}).json()
    auth = {"Authorization": f"Bearer {pair['access_token']}"}
    assert flask.send("GET", "/api/profile", headers=auth).json() == {"logged_in_as": "alice"}
    refreshed = flask.send("POST", "/api/refresh", json={"refresh_token": pair["refresh_token"]}).json()
    again = asgi.send("POST", "/api/refresh", json={"refresh_token": pair["refresh_token"]})
    assert again.status == 401  # reuse detected across the two servers: the family is revoked
    r = asgi.send("GET", "/api/profile", headers={"Authorization": f"Bearer {refreshed['access_token']}"})
    assert r.status == 401


def test_settings_validated_at_start_up(tmp_path):
    with pytest.raises(ConfigError, match="DEBUG"):
        create_asgi_app(tmp_path / "a", config={"DEBUG": True})
    with pytest.raises(ConfigError, match="SESSIONWARD_SESSION_IDLE_TIMEOUT"):
        create_asgi_app(tmp_path / "b", config={"SESSIONWARD_SESSION_IDLE_TIMEOUT": "soon"})
    with pytest.raises(ConfigError, match="SESSIONWARD_COOKIE_SAMESITE"):
        create_asgi_app(tmp_path / "c", config={"SESSIONWARD_COOKIE_SAMESITE": "Sometimes"})


def test_secrets_file_is_the_flask_apps(tmp_path):
    flask, asgi = pair_on(tmp_path)
    try:
        assert (tmp_path / "inst" / "secrets.json").stat().st_mode & 0o077 == 0
        flask_csrf = flask.app.extensions["sessionward"].csrf
        assert asgi.app.state.sessionward.csrf.session_token("x") == flask_csrf.session_token("x")
    finally:
        asgi.close()


@pytest.mark.parametrize(("proxies", "expected"), [(0, "127.0.0.1"), (1, "203.0.113.7")])
def test_trusted_proxies(tmp_path, monkeypatch, proxies, expected):
    monkeypatch.setenv("SESSIONWARD_TRUSTED_PROXIES", str(proxies))
    asgi = AsgiDriver(create_asgi_app(tmp_path / "inst"))
    try:
        asgi.add_user("alice")
        forwarded = {"X-Forwarded-For": "203.0.113.7"}
        token = form_token(asgi.send("GET", "/login", headers=forwarded))
        r = asgi.send("POST", "/login", headers=forwarded,
                      form={"username": "alice", "password": PASSWORD, "csrf_token": token})
        assert r.status == 303
        assert expected in asgi.send("GET", "/dashboard", headers=forwarded).text
    finally:
        asgi.close()


@pytest.fixture
def private_redis():
    from _services import missing_service, start_redis_server  # type: ignore[import-not-found]

    try:
        server = start_redis_server()
    except RuntimeError as exc:
        missing_service(str(exc))
    yield server
    server.cleanup()


def test_O2_store_down_means_503_never_access_then_recovery(tmp_path, private_redis, monkeypatch):
    monkeypatch.setenv("SESSIONWARD_STORE_URL", private_redis.url)
    asgi = AsgiDriver(create_asgi_app(tmp_path / "inst", clock=SystemClock()))
    try:
        asgi.add_user("alice")
        login(asgi, forget=False)
        assert asgi.send("GET", "/dashboard").status == 200
        token = form_token(asgi.send("GET", "/sessions"))
        private_redis.stop()
        for method, path, form in (
            ("GET", "/dashboard", None),
            ("GET", "/sessions", None),
            ("POST", "/sessions/end-others", {"csrf_token": token}),
            ("POST", "/logout", {"csrf_token": token}),
        ):
            r = asgi.send(method, path, form=form)
            assert r.status == 503, (path, r.status, r.text[:200])
            assert (r.header("retry-after") or "").isdigit()
            assert "unavailable" in r.text.lower() and "Traceback" not in r.text
        health = asgi.send("GET", "/healthz")
        assert health.status == 503 and health.json() == {"status": "unavailable"}
        api = asgi.send("GET", "/dashboard", headers=JSON)
        assert api.status == 503 and api.json()["error"]["code"] == "store_unavailable"
        pair = asgi.send("POST", "/api/login", json={"username": "alice", "password": PASSWORD})
        assert pair.status == 503
        private_redis.start()  # comes back empty: the old session is gone, nobody is let in
        deadline = time.monotonic() + 10
        while asgi.send("GET", "/healthz").status != 200:
            assert time.monotonic() < deadline, "did not recover within 10 s"
            time.sleep(0.2)
        assert asgi.send("GET", "/dashboard").status == 303
        login(asgi, forget=False)
        assert asgi.send("GET", "/dashboard").status == 200
    finally:
        asgi.close()


def test_bad_input_never_500(tmp_path):
    asgi = AsgiDriver(create_asgi_app(tmp_path / "inst"))
    try:
        for method, path, kwargs in (
            ("POST", "/api/login", {"content": b"\xff\xfe", "headers": {"Content-Type": "application/json"}}),
            ("POST", "/api/login", {"content": b"[" * 5000, "headers": {"Content-Type": "application/json"}}),
            ("POST", "/login", {"content": b"--x\r\nbroken",
                                "headers": {"Content-Type": "multipart/form-data; boundary=x"}}),
            ("POST", "/login", {"content": b"a=%ff&b",
                                "headers": {"Content-Type": "application/x-www-form-urlencoded"}}),
            ("GET", "/login?next=%0d%0aSet-Cookie:x", {}),
            ("DELETE", "/api/sessions/%00", {"headers": {"Authorization": "Bearer x"}}),
        ):
            r = asgi.send(method, path, **kwargs)
            assert 200 <= r.status < 500, (method, path, r.status, r.text[:300])
    finally:
        asgi.close()
