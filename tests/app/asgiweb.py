"""Drivers that send the same requests to the Flask app (its test client) and to the ASGI app (Starlette's
TestClient), and answers reduced to what must be equal between the two (fixtures are in the test modules).

A module of its own, not conftest: `from conftest import` picks whichever conftest was imported last."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from starlette.testclient import TestClient

from sessionward.app import create_app
from sessionward.app.asgi import create_asgi_app
from sessionward.clock import ManualClock
from sessionward.flask import state

BASE = "https://localhost"
PASSWORD = "correct horse battery staple"
AGENT = "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0"
#: headers compared between the two apps (Set-Cookie separately, by name and attributes)
COMPARED = ("cache-control", "www-authenticate", "retry-after", "location", "clear-site-data",
            "content-security-policy", "x-frame-options", "x-content-type-options", "referrer-policy",
            "strict-transport-security", "permissions-policy", "cross-origin-opener-policy")
_SECRETS = re.compile(r'(name="csrf_token" value=")[^"]+(")')
_IDS = re.compile(r"(/sessions/)[A-Za-z0-9_-]{16,}(/end)")


@dataclass
class Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k == name), None)

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode()


class FlaskDriver:
    def __init__(self, app: Any) -> None:
        self.app = app
        self.client = app.test_client()

    def forget_cookies(self) -> None:
        self.client = self.app.test_client()

    def add_user(self, name: str, password: str = PASSWORD) -> Any:
        with self.app.app_context():
            return state().users.create(name, password)

    def send(self, method: str, path: str, *, headers: dict[str, str] | None = None, **kwargs: Any) -> Answer:
        if "form" in kwargs:
            kwargs["data"] = kwargs.pop("form")
        if "content" in kwargs:
            kwargs["data"] = kwargs.pop("content")
        # a Cookie header of the test's own goes out exactly as given (the jar would replace it)
        client = self.app.test_client(use_cookies=False) if "Cookie" in (headers or {}) else self.client
        r = client.open(path, method=method, base_url=BASE, headers={"User-Agent": AGENT, **(headers or {})},
                        **kwargs)
        return Answer(r.status_code, [(k.lower(), v) for k, v in r.headers.items()], r.get_data())


class AsgiDriver:
    def __init__(self, app: Any) -> None:
        self.app = app
        self.client = TestClient(app, base_url=BASE, follow_redirects=False, client=("127.0.0.1", 50000))
        self.client.__enter__()

    def close(self) -> None:
        self.client.__exit__(None, None, None)

    def forget_cookies(self) -> None:
        self.client.cookies.clear()

    def add_user(self, name: str, password: str = PASSWORD) -> Any:
        users = self.app.state.sessionward.users
        return self.client.portal.call(lambda: users.create(name, password))  # type: ignore[union-attr]

    def send(self, method: str, path: str, *, headers: dict[str, str] | None = None, **kwargs: Any) -> Answer:
        if "form" in kwargs:
            kwargs["data"] = kwargs.pop("form")
        r = self.client.request(method, path, headers={"User-Agent": AGENT, **(headers or {})}, **kwargs)
        return Answer(r.status_code, [(k.lower(), v) for k, v in r.headers.multi_items()], r.content)


def both(tmp_path: Any, **config: Any) -> tuple[FlaskDriver, AsgiDriver]:
    """The Flask and the ASGI service, each on its own instance folder, on clocks at the same time."""
    flask_app = create_app(tmp_path / "flask", clock=ManualClock(), config=config or None)
    asgi_app = create_asgi_app(tmp_path / "asgi", clock=ManualClock(), config=config or None)
    return FlaskDriver(flask_app), AsgiDriver(asgi_app)


def cookies(answer: Answer) -> dict[str, dict[str, str]]:
    """Set-Cookie by name: its attributes (lower-cased; no value, no Expires: Max-Age says it)."""
    out: dict[str, dict[str, str]] = {}
    for name, value in answer.headers:
        if name != "set-cookie":
            continue
        first, *attrs = (p.strip() for p in value.split(";"))
        parsed: dict[str, str] = {}
        for attr in attrs:
            key, _, val = attr.partition("=")
            if key.lower() != "expires":
                parsed[key.lower()] = val.lower()
        out[first.split("=", 1)[0]] = parsed
    return out


def _normalized_json(value: Any) -> Any:
    """Values that differ by nature between two instances (tokens, ids, keys) replaced by their kind."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key in ("access_token", "refresh_token", "id", "kid", "x", "y", "n", "e", "crv"):
                out[key] = f"<{key}>"
            else:
                out[key] = _normalized_json(item)
        return out
    if isinstance(value, list):
        return [_normalized_json(v) for v in value]
    return value


def summary(answer: Answer) -> dict[str, Any]:
    """What must be equal between the Flask and the ASGI answer to the same request."""
    content_type = (answer.header("content-type") or "").split(";")[0]
    if answer.status == 204 or 300 <= answer.status < 400:  # noqa: PLR2004 - no body to describe
        content_type = ""
    vary = (answer.header("vary") or "").lower()
    out: dict[str, Any] = {
        "status": answer.status,
        "content-type": content_type,
        "headers": {name: answer.header(name) for name in COMPARED},
        "vary-cookie": "cookie" in vary,
        "cookies": cookies(answer),
        "allow": answer.header("allow") is not None,
    }
    if content_type == "application/json" and answer.body:
        out["json"] = _normalized_json(answer.json())
    elif content_type == "text/html":
        out["html"] = _IDS.sub(r"\1<id>\2", _SECRETS.sub(r"\1<token>\2", answer.text)).strip()
    return out


def form_token(answer: Answer) -> str:
    match = _SECRETS.search(answer.text)
    assert match, "no csrf_token in the page"
    return answer.text[match.end(1):match.start(2)]
