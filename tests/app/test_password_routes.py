"""A7: every route of the reference service that takes a password is found, and each is throttled and logged
like a login (it goes through the one `Authenticator`).

Discovery is generic, so a route added later is found without editing this file:
- web forms: every GET page of the Flask url_map is rendered, anonymously and signed in, and every form with
  an `<input type="password">` is collected (its `action`, its fields); every template that has a password
  input must have been rendered on the way (else a page was missed);
- the JSON API: every operation of the OpenAPI document whose request schema has a property named like a
  password;
- and every url_map route that takes a request body is either a form target seen on some page or an
  operation of the OpenAPI document, so no route escapes both.

The proof for each route, from its own client address and for its own user: the free allowance of wrong
passwords is checked (401/403, each a `login_failed` security event), then even the right password is
refused with 429 and a `Retry-After` (a `login_throttled` event). A field marked `autocomplete="new-password"`
(or an API property named `new_...`) gets a valid new password, so an unthrottled route would have changed it.
"""

from __future__ import annotations

import ast
import itertools
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import flask
import pytest
from webtest import BASE, PASSWORD, Web, login  # type: ignore[import-not-found]

import sessionward
from sessionward.auth import PURPOSES
from sessionward.config import ThrottlePolicy

NEW_PASSWORD = "a Brand-new passphrase 2"
TEMPLATES = Path(sessionward.__file__).parent / "app" / "templates"
BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
_addresses = (f"203.0.113.{i}" for i in itertools.count(1))


# -- discovery -----------------------------------------------------------------------------------


@dataclass
class Form:
    action: str
    method: str
    fields: list[dict[str, str]] = field(default_factory=list)  # the attributes of each input

    @property
    def takes_password(self) -> bool:
        return any(f.get("type", "").lower() == "password" for f in self.fields)


class _Forms(HTMLParser):
    def __init__(self, page: str) -> None:
        super().__init__()
        self.page, self.forms, self._open = page, [], None  # type: ignore[var-annotated]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self._open = Form(a.get("action") or self.page, (a.get("method") or "get").upper())
            self.forms.append(self._open)
        elif tag in ("input", "textarea", "select") and self._open is not None:
            self._open.fields.append({"type": "text", **a})

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._open = None


def forms_in(html: str, page: str) -> list[Form]:
    parser = _Forms(page)
    parser.feed(html)
    return parser.forms


def get_pages(app: Any) -> list[str]:
    return sorted(r.rule for r in app.url_map.iter_rules() if "GET" in r.methods and not r.arguments)


def signed_in(web: Web, name: str, ip: str) -> Any:
    client = web.client()
    client.environ_base["REMOTE_ADDR"] = ip
    r = login(client, name)
    assert r.status_code == 303, r.status_code
    return client


@dataclass
class Found:
    forms: list[tuple[Form, bool]]  # (form, needs a signed-in client)
    actions: set[str]  # every form target seen, password or not
    templates: set[str]  # every template rendered


def walk_pages(web: Web) -> Found:
    found = Found([], set(), set())
    seen: set[tuple[str, str, bool]] = set()

    def rendered(sender: Any, template: Any, context: Any, **extra: Any) -> None:
        found.templates.add(template.name)

    web.add_user("walker")
    clients = [(web.client(), False), (signed_in(web, "walker", next(_addresses)), True)]
    with flask.template_rendered.connected_to(rendered, web.app):
        for (client, signed), page in itertools.product(clients, get_pages(web.app)):
            r = client.get(page, base_url=BASE)
            if r.status_code != 200 or r.mimetype != "text/html":
                continue
            for form in forms_in(r.get_data(as_text=True), page):
                found.actions.add(form.action)
                if form.takes_password and (form.action, form.method, signed) not in seen:
                    seen.add((form.action, form.method, signed))
                    found.forms.append((form, signed))
    return found


def _resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        node: Any = doc
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def api_password_operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any], bool]]:
    """(path, method, request schema, needs a bearer token) of every operation whose body takes a password."""
    out = []
    for path, item in doc["paths"].items():
        for method, op in item.items():
            content = op.get("requestBody", {}).get("content", {}).get("application/json")
            if content is None:
                continue
            schema = _resolve(doc, content["schema"])
            if any("password" in name for name in schema.get("properties", {})):
                out.append((path, method.upper(), schema, bool(op.get("security"))))
    return out


# -- the proof ------------------------------------------------------------------------------------


def security_events(caplog: pytest.LogCaptureFixture) -> list[tuple[str, dict[str, Any]]]:
    return [(r.event, r.fields) for r in caplog.records if r.name == "sessionward.security"]  # type: ignore[attr-defined]


def prove_throttled_and_logged(send: Any, caplog: pytest.LogCaptureFixture, what: str) -> None:
    """`send(password)` posts to the route once. The free allowance of wrong passwords is checked (401/403)
    and logged, then the right password gets 429 with Retry-After, logged as throttled."""
    wrong = ThrottlePolicy().account_free + 1
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="sessionward.security"):
        for i in range(wrong):
            r = send(f"not the password {i}")
            assert r.status_code in (401, 403), (what, i, r.status_code)
        failed = [f for e, f in security_events(caplog) if e == "login_failed"]
        assert len(failed) == wrong and all(f["purpose"] in PURPOSES for f in failed), (what, failed)
        caplog.clear()
        r = send(PASSWORD)
        assert r.status_code == 429, (what, r.status_code)
        assert r.headers["Retry-After"].isdigit() and int(r.headers["Retry-After"]) > 0, what
        assert [e for e, _ in security_events(caplog)] == ["login_throttled"], (what, security_events(caplog))


def fill_form(form: Form, username: str, password: str) -> dict[str, str]:
    data = {}
    for f in form.fields:
        name, kind = f.get("name"), f.get("type", "text").lower()
        if not name or kind in ("submit", "button"):
            continue
        if kind == "password":
            data[name] = NEW_PASSWORD if f.get("autocomplete") == "new-password" else password
        elif kind == "hidden":
            data[name] = f.get("value", "")
        elif f.get("autocomplete") == "username" or name == "username":
            data[name] = username
    return data


def fill_json(schema: dict[str, Any], username: str, password: str) -> dict[str, str]:
    body = {}
    for name in schema.get("properties", {}):
        if "password" in name:
            body[name] = NEW_PASSWORD if name.startswith("new") else password
        elif name == "username":
            body[name] = username
        elif name in schema.get("required", []):
            raise AssertionError(f"cannot fill required field {name!r}: teach this test about it")
    return body


@pytest.fixture
def found(web: Web) -> Found:
    return walk_pages(web)


def test_A7_discovery_finds_every_password_route(web: Web, found: Found) -> None:
    """Not vacuous, and complete: the known routes are among those found, every template with a password
    input was rendered, and every route that takes a body is a form target or an API operation."""
    web_routes = {(f.action, f.method) for f, _ in found.forms}
    assert {("/login", "POST"), ("/reauth", "POST"), ("/password", "POST")} <= web_routes, web_routes
    with web.app.app_context():  # type: ignore[attr-defined]
        doc = web.client().get("/api/openapi.json", base_url=BASE).get_json()
    api_routes = {(p, m) for p, m, _, _ in api_password_operations(doc)}
    assert {("/api/login", "POST"), ("/api/password", "POST")} <= api_routes, api_routes
    with_password = {p.name for p in TEMPLATES.glob("*.html")
                     if re.search(r"type=\"?password", p.read_text(), re.IGNORECASE)}
    assert with_password and with_password <= found.templates, with_password - found.templates
    adapter = web.app.url_map.bind("localhost")  # type: ignore[attr-defined]
    targets = {adapter.match(a, method="POST")[0] for a in found.actions if a.startswith("/")}
    api_ops = {adapter.match(re.sub(r"\{[^}]+\}", "x", p), method=m.upper())[0]
               for p, item in doc["paths"].items() for m in item}
    # the DBSC protocol endpoints read headers only (a signed JWT), never a body: no password can reach them
    protocol = {"sessionward_dbsc_register", "sessionward_dbsc_refresh"}
    for rule in web.app.url_map.iter_rules():  # type: ignore[attr-defined]
        if rule.methods & BODY_METHODS:
            assert rule.endpoint in targets | api_ops | protocol, f"{rule.rule} is neither a form target nor documented"


def test_A7_every_web_form_with_a_password_is_throttled_and_logged(
    web: Web, found: Found, caplog: pytest.LogCaptureFixture
) -> None:
    for n, (form, needs_login) in enumerate(found.forms):
        name, ip = f"webform{n}", next(_addresses)
        web.add_user(name)
        client = signed_in(web, name, ip) if needs_login else web.client()
        client.environ_base["REMOTE_ADDR"] = ip
        page = form.action if form.action in get_pages(web.app) else "/"

        def send(password: str, form: Form = form, client: Any = client, page: str = page, name: str = name) -> Any:
            fresh = [f for f in forms_in(client.get(page, base_url=BASE).get_data(as_text=True), page)
                     if f.action == form.action and f.takes_password]
            assert fresh, f"the form for {form.action} is gone from {page}"
            return client.open(form.action, method=form.method, base_url=BASE,
                               data=fill_form(fresh[0], name, password))

        prove_throttled_and_logged(send, caplog, f"web {form.method} {form.action}")


def test_A7_every_api_operation_with_a_password_is_throttled_and_logged(
    web: Web, caplog: pytest.LogCaptureFixture
) -> None:
    client = web.client()
    doc = client.get("/api/openapi.json", base_url=BASE).get_json()
    for n, (path, method, schema, secured) in enumerate(api_password_operations(doc)):
        name, ip = f"apiop{n}", next(_addresses)
        web.add_user(name)
        client = web.client()
        client.environ_base["REMOTE_ADDR"] = ip
        headers = {}
        if secured:  # a fresh token from a password login
            r = client.post("/api/login", base_url=BASE, json={"username": name, "password": PASSWORD})
            assert r.status_code == 200, r.get_data(as_text=True)
            headers["Authorization"] = "Bearer " + r.get_json()["access_token"]

        def send(password: str, path: str = path, method: str = method, schema: dict[str, Any] = schema,
                 name: str = name, client: Any = client, headers: dict[str, str] = headers) -> Any:
            return client.open(path, method=method, base_url=BASE, headers=headers,
                               json=fill_json(schema, name, password))

        prove_throttled_and_logged(send, caplog, f"api {method} {path}")


def _hasher_calls(tree: ast.AST) -> Iterator[int]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in (
            "verify", "dummy_verify"
        ) and "hasher" in ast.unparse(node.func.value).lower():
            yield node.lineno


def test_A7_only_the_authenticator_verifies_passwords() -> None:
    """No module but `auth.py` asks a password hasher to verify: a new password check cannot bypass the
    throttle and the log by calling the hasher directly (as the web password form once did)."""
    package = Path(sessionward.__file__).parent
    offenders = []
    for path in package.rglob("*.py"):
        if path.name in ("auth.py", "passwords.py"):
            continue
        lines = list(_hasher_calls(ast.parse(path.read_text(), str(path))))
        offenders += [f"{path.relative_to(package)}:{line}" for line in lines]
    assert offenders == []
