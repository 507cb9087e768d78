"""O2: a store that cannot be reached means 503 for protected requests, never access and never a 500; the
service recovers by itself when the store returns. A real, private redis-server is stopped and restarted."""

from __future__ import annotations

import time

import pytest
from _services import start_redis_server  # type: ignore[import-not-found]
from webtest import BASE, PASSWORD, login, management_client, page_token  # type: ignore[import-not-found]

from sessionward.app import create_app
from sessionward.clock import SystemClock
from sessionward.flask import state


@pytest.fixture
def private_redis():
    try:
        server = start_redis_server()
    except RuntimeError as exc:
        from _services import missing_service  # type: ignore[import-not-found]

        missing_service(str(exc))
    yield server
    server.cleanup()


def test_O2_store_down_means_503_never_access_then_recovery(tmp_path, private_redis, monkeypatch):
    monkeypatch.setenv("SESSIONWARD_STORE_URL", private_redis.url)
    app = create_app(tmp_path / "inst", clock=SystemClock())
    with app.app_context():
        state().users.create("alice", PASSWORD)
    client = app.test_client()
    assert login(client, "alice").status_code == 303
    assert client.get("/dashboard", base_url=BASE).status_code == 200
    token = page_token(client, "/sessions")

    private_redis.stop()
    t0 = time.monotonic()
    for method, path, data in (
        ("GET", "/dashboard", None),
        ("GET", "/sessions", None),
        ("POST", "/sessions/end-others", {"csrf_token": token}),
        ("POST", "/logout", {"csrf_token": token}),
        ("POST", "/login", {"username": "alice", "password": PASSWORD}),
    ):
        r = client.open(path, method=method, base_url=BASE, data=data)
        body = r.get_data(as_text=True)
        if path == "/login":  # the login form's CSRF check comes first; a 403 is also a refusal
            assert r.status_code in (403, 503), (path, r.status_code)
        else:
            assert r.status_code == 503, (path, r.status_code, body[:200])
            assert r.headers["Retry-After"].isdigit()
            assert "unavailable" in body.lower()
        assert "Traceback" not in body and "Welcome" not in body
    assert time.monotonic() - t0 < 30, "requests must fail fast while the store is down"
    health = client.get("/healthz", base_url=BASE)
    assert health.status_code == 503 and health.get_json() == {"status": "unavailable"}
    detailed = management_client(app).get("/healthz")
    assert detailed.status_code == 503 and detailed.get_json()["checks"]["store"] == "unavailable"
    api = client.get("/dashboard", base_url=BASE, headers={"Accept": "application/json"})
    assert api.status_code == 503 and api.get_json()["error"]["code"] == "store_unavailable"

    private_redis.start()  # comes back empty (it keeps nothing): the old session is gone, nobody is let in
    deadline = time.monotonic() + 10
    while client.get("/healthz", base_url=BASE).status_code != 200:
        assert time.monotonic() < deadline, "did not recover within 10 s"
        time.sleep(0.2)
    assert client.get("/dashboard", base_url=BASE).status_code == 303
    assert login(client, "alice").status_code == 303
    assert client.get("/dashboard", base_url=BASE).status_code == 200
