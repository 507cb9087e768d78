"""The management listener's app (`sessionward.app.management`): only GET /metrics and /healthz, one error shape."""

from __future__ import annotations

from werkzeug.test import Client

from sessionward.app.management import health, management_app
from sessionward.exceptions import StoreUnavailable


def _down() -> None:
    raise StoreUnavailable("down")


def test_health_names_what_is_down() -> None:
    assert health({"store": lambda: None, "database": _down}) == (False, {"store": "ok", "database": "unavailable"})


def test_management_app_serves_only_its_two_endpoints() -> None:
    client = Client(management_app({"store": _down}))
    detailed = client.get("/healthz")
    assert detailed.status_code == 503 and detailed.headers["Retry-After"] == "5"
    assert detailed.get_json() == {"status": "unavailable", "checks": {"store": "unavailable"}}
    assert client.get("/metrics").status_code == 200
    missing = client.get("/login")
    assert missing.status_code == 404 and missing.get_json()["error"]["code"] == "not_found"
    post = client.post("/metrics")
    assert post.status_code == 405 and post.headers["Allow"] == "GET, HEAD"
