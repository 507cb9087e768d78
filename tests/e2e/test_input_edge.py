"""O5 against the real server (gunicorn over TLS), on SQLite and on PostgreSQL: any text a client can send
(lone surrogates, NUL and other control characters, bidi overrides, very long values) in any JSON field, form
field, query, path or header is a 4xx (or a normal answer), never a 5xx, never a raw log line; `next` with a
control character falls back to the default; a body over the limit is 413 however it is framed.

One server per store for the whole module; hypothesis examples are bounded to keep the module quick."""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import secrets
import ssl
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, quote_from_bytes

import pytest
import requests
from cluster import private_database
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from serverproc import ServerProcess, csrf_from, login, new_http_session

pytestmark = pytest.mark.server

FUZZ = settings(max_examples=40, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
MAX_BODY = 64 * 1024
NO_THROTTLE = {"SESSIONWARD_THROTTLE_ACCOUNT_FREE": "1000000", "SESSIONWARD_THROTTLE_ADDRESS_FREE": "1000000"}
BIDI = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"

# -- strategies: text with surrogates, control and bidi characters, and long values ----------------

nasty_char = st.one_of(
    st.characters(),  # any Unicode scalar
    st.characters(categories=["Cs"]),  # lone surrogates (JSON carries them as \ud800 escapes)
    st.characters(categories=["Cc"]),  # NUL, CR, LF, ESC, DEL, C1
    st.sampled_from(BIDI),
)
nasty_text = st.one_of(
    st.text(alphabet=nasty_char, max_size=30),
    st.tuples(st.integers(1000, 3000), st.text(alphabet=nasty_char, max_size=3)).map(lambda t: "a" * t[0] + t[1]),
)
nasty_bytes = st.one_of(st.binary(max_size=40), nasty_text.map(lambda t: t.encode("utf-8", "surrogatepass")))


@contextlib.contextmanager
def _database(store: str, request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    if store == "sqlite":
        yield {}
        return
    with private_database(request.getfixturevalue("postgres_url")) as url:
        yield {"SESSIONWARD_DATABASE_URL": url, "SESSIONWARD_STORE_URL": url}


class Edge:
    """One running server with a user for the API (alice, a token pair) and one for the web forms (bob,
    a signed-in browser session), plus a pre-session login form token."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.alice, self.bob = "alice", "bob"
        self.password = "edge-" + secrets.token_urlsafe(12)
        server.add_user(self.alice, self.password)
        server.add_user(self.bob, self.password)
        self.http = new_http_session(server)
        self.pair = self.new_pair()
        self.logout_pair: dict[str, str] | None = None  # a family of its own for the logout fuzz
        self.anonymous = new_http_session(server)
        self.login_token = csrf_from(self.anonymous.get(server.url("/login"), timeout=10).text)
        self.browser = new_http_session(server)
        assert login(self.browser, server, self.bob, self.password).status_code == 303
        self.session_token = csrf_from(self.browser.get(server.url("/sessions"), timeout=10).text)

    def new_pair(self) -> dict[str, str]:
        r = self.http.post(self.server.url("/api/login"), json={"username": self.alice, "password": self.password},
                           timeout=30)
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def edge(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, flavour: str) -> Iterator[Edge]:
    with _database(request.param, request) as env:
        server = ServerProcess(instance=tmp_path_factory.mktemp(f"edge-{flavour}-{request.param}"),
                               env={**env, **NO_THROTTLE}, flavour=flavour)
        with server:
            yield Edge(server)
            output = server.output_text()
        assert "Traceback" not in output and "unhandled error" not in output, output[-3000:]
        # client text never reaches a log raw: no NUL, ESC, bidi override or other control character
        raw = re.findall(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]", output)
        assert not raw, (raw[:5], output[-2000:])


def answered(response: requests.Response) -> requests.Response:
    assert response.status_code < 500, (response.status_code, response.text[:300])
    if response.status_code >= 400 and response.headers.get("Content-Type", "").startswith("application/json"):
        error = response.json()["error"]
        assert isinstance(error["code"], str) and isinstance(error["message"], str)
    return response


# -- the JSON API ---------------------------------------------------------------------------------

API = {  # endpoint -> its fields; none of these can end alice's token family with text a fuzzer finds
    "/api/login": ("username", "password"),
    "/api/refresh": ("refresh_token",),
    "/api/password": ("current_password", "new_password"),
}


@FUZZ
@given(path=st.sampled_from(sorted(API)), data=st.data())
def test_O5_json_api_never_5xx(edge: Edge, path: str, data: Any) -> None:
    names = st.one_of(st.sampled_from(API[path]), nasty_text)
    body = data.draw(st.dictionaries(names, st.one_of(nasty_text, st.integers(), st.none()), max_size=4))
    payload = json.dumps(body)  # ensure_ascii: a lone surrogate travels as a \udXXX escape
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {edge.pair['access_token']}"}
    answered(edge.http.post(edge.server.url(path), data=payload.encode(), headers=headers, timeout=30))


@FUZZ
@given(body=st.dictionaries(st.one_of(st.just("refresh_token"), nasty_text), st.one_of(nasty_text, st.integers()),
                            max_size=2))
def test_O5_json_logout_body_never_5xx(edge: Edge, body: dict[str, Any]) -> None:
    """Its own token: a body that passes (204) ends the family, so the next example logs in again."""
    if edge.logout_pair is None:
        edge.logout_pair = edge.new_pair()
    token = edge.logout_pair["access_token"]
    r = answered(edge.http.post(edge.server.url("/api/logout"), data=json.dumps(body),
                                headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
                                timeout=30))
    if r.status_code == 204:
        edge.logout_pair = None


@settings(FUZZ, max_examples=20)  # each valid-looking pair costs an argon2 verify
@given(username=nasty_text, password=nasty_text)
def test_O5_json_login_refuses_bad_text_with_4xx(edge: Edge, username: str, password: str) -> None:
    r = answered(edge.http.post(edge.server.url("/api/login"),
                                data=json.dumps({"username": username, "password": password}),
                                headers={"Content-Type": "application/json"}, timeout=30))
    assert r.status_code in (401, 422, 429), r.status_code


@pytest.mark.parametrize("username", ["al\ud800ice", "alice\x00", "ali\u202ece", "alice\r\nforged: 1"])
def test_O5_json_username_with_bad_text_is_422_whether_or_not_the_user_exists(edge: Edge, username: str) -> None:
    answers = []
    for password in (edge.password, "not-the-password"):
        r = edge.http.post(edge.server.url("/api/login"), data=json.dumps({"username": username, "password": password}),
                           headers={"Content-Type": "application/json"}, timeout=30)
        answers.append((r.status_code, r.json()["error"]["code"]))
    assert answers == [(422, "validation_failed")] * 2, answers  # the same answer: existence is not told


def test_O5_nul_password_on_the_api_is_422_not_a_driver_error(edge: Edge) -> None:
    r = edge.http.post(edge.server.url("/api/password"),
                       json={"current_password": edge.password, "new_password": "x\x00" * 8},
                       headers={"Authorization": f"Bearer {edge.pair['access_token']}"}, timeout=30)
    assert r.status_code == 422, (r.status_code, r.text)


@FUZZ
@given(segment=nasty_bytes)
def test_O5_path_segments_never_5xx(edge: Edge, segment: bytes) -> None:
    part = quote_from_bytes(segment, safe="") or "x"
    answered(edge.http.delete(edge.server.url(f"/api/sessions/{part}"),
                              headers={"Authorization": f"Bearer {edge.pair['access_token']}"}, timeout=30))
    answered(edge.browser.post(edge.server.url(f"/sessions/{part}/end"), data={"csrf_token": edge.session_token},
                               timeout=30, allow_redirects=False))
    # without the token: 403 and a csrf_failed event naming the path (escaped: tests/test_text.py)
    refused = edge.browser.post(edge.server.url(f"/sessions/{part}/end"), timeout=30, allow_redirects=False)
    assert answered(refused).status_code == 403


# -- the web forms --------------------------------------------------------------------------------

def form_body(fields: dict[str, bytes], raw: bool) -> bytes:
    """Percent-encoded (any bytes, invalid UTF-8 included) or raw bytes straight in the body."""
    if raw:
        return b"&".join(name.encode() + b"=" + value for name, value in fields.items())
    return "&".join(f"{name}={quote_from_bytes(value, safe='')}" for name, value in fields.items()).encode()


FORMS = {  # path -> (fuzzed fields, which browser)
    "/login": (("username", "password", "next"), "anonymous"),
    "/reauth": (("password", "next"), "browser"),
    "/password": (("current_password", "new_password", "confirm_password"), "browser"),
}


@FUZZ
@given(path=st.sampled_from(sorted(FORMS)), data=st.data(), raw=st.booleans(), user_agent=st.binary(max_size=30))
def test_O5_web_forms_never_5xx(edge: Edge, path: str, data: Any, raw: bool, user_agent: bytes) -> None:
    names, who = FORMS[path]
    fields = data.draw(st.fixed_dictionaries({}, optional={name: nasty_bytes for name in names}))
    valid = (edge.login_token if who == "anonymous" else edge.session_token).encode()
    fields["csrf_token"] = data.draw(st.one_of(st.just(valid), nasty_bytes))
    client = getattr(edge, who)
    # a header value may carry any byte but CR/LF (http.client refuses those) and no leading space
    agent = user_agent.replace(b"\r", b"").replace(b"\n", b"").lstrip(b" \t") or b"fuzz"
    headers = {"Content-Type": "application/x-www-form-urlencoded", "User-Agent": agent}
    answered(client.post(edge.server.url(path), data=form_body(fields, raw), headers=headers, timeout=30,
                         allow_redirects=False))


@FUZZ
@given(target=nasty_bytes)
def test_O5_next_query_never_5xx_and_never_a_control_character_in_location(edge: Edge, target: bytes) -> None:
    for client in (edge.anonymous, edge.browser):
        r = answered(client.get(edge.server.url("/login?next=/" + quote_from_bytes(target, safe="")), timeout=30,
                                allow_redirects=False))
        location = r.headers.get("Location", "")
        assert not re.search(r"[\x00-\x1f\x7f]", location), location


@pytest.mark.parametrize("target", ["/sessions\r\nSet-Cookie: x=1", "/sessions\n", "/sessions\x00", "/ses\u202esions"])
def test_O5_next_with_a_control_character_falls_back_to_the_dashboard(edge: Edge, target: str) -> None:
    r = edge.browser.get(edge.server.url("/login?next=" + quote(target, safe="/")), timeout=10, allow_redirects=False)
    assert r.status_code == 303 and r.headers["Location"] == "/dashboard", (r.status_code, r.headers)
    assert "x" not in r.cookies
    plain = edge.browser.get(edge.server.url("/login?next=/sessions"), timeout=10, allow_redirects=False)
    assert plain.headers["Location"] == "/sessions"  # the fallback is for bad text only


@pytest.mark.parametrize("value", ["bob\x00", "b\ud800ob", "bo\u202eb", "bob\x1b[31m"])
def test_O5_login_form_with_bad_text_is_422(edge: Edge, value: str) -> None:
    body = form_body({"username": value.encode("utf-8", "surrogatepass"), "password": edge.password.encode(),
                      "csrf_token": edge.login_token.encode()}, raw=False)
    r = edge.anonymous.post(edge.server.url("/login"), data=body, allow_redirects=False, timeout=10,
                            headers={"Content-Type": "application/x-www-form-urlencoded"})
    # invalid UTF-8 (a surrogate's bytes) decodes to U+FFFD, a name that is simply not bob's: 401 then
    assert r.status_code in ((401,) if "\ud800" in value else (422,)), (r.status_code, r.text[:200])


# -- bodies over the limit, however framed ---------------------------------------------------------

def raw_post(server: ServerProcess, path: str, body: bytes, *, chunked: bool) -> tuple[int, bytes]:
    ctx = ssl.create_default_context(cafile=server.verify)
    conn = http.client.HTTPSConnection(server.host, server.port, context=ctx, timeout=30)
    try:
        headers = {"Content-Type": "application/json"}
        if chunked:
            conn.request("POST", path, body=iter([body[i:i + 8192] for i in range(0, len(body), 8192)]),
                         headers=headers, encode_chunked=True)
        else:
            conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_O5_body_over_the_limit_is_413_however_framed(edge: Edge, chunked: bool) -> None:
    # a valid JSON document padded past the limit: cut at 64 KiB it would still parse (and answer 401)
    login_json = json.dumps({"username": "alice", "password": "wrong password"}).encode()
    status, body = raw_post(edge.server, "/api/login", login_json + b" " * (MAX_BODY + 1000), chunked=chunked)
    assert status == 413, (status, body[:200])
    assert json.loads(body)["error"]["code"] == "request_entity_too_large"
    small_status, _ = raw_post(edge.server, "/api/login", login_json + b" " * 1000, chunked=chunked)
    assert small_status == 401  # within the limit the same framing is read whole


@pytest.mark.parametrize("agent",
                         [b"agent\x00nul", b"\x1b[31mred\x1b[0m", b"latin1 \xe9\x85\xff", b"bidi \xe2\x80\xae"])
def test_O5_a_successful_login_stores_any_user_agent_without_5xx(edge: Edge, agent: bytes) -> None:
    """The User-Agent is kept with the session (device list): whatever bytes it has, sign-in works or is a 4xx."""
    api = edge.http.post(edge.server.url("/api/login"), json={"username": edge.alice, "password": edge.password},
                         headers={"User-Agent": agent}, timeout=30)
    assert answered(api).status_code in (200, 400), api.status_code
    if api.status_code == 200:
        listed = edge.http.get(edge.server.url("/api/sessions"), timeout=30,
                               headers={"Authorization": f"Bearer {api.json()['access_token']}"})
        assert answered(listed).status_code == 200
    web = new_http_session(edge.server)
    web.headers["User-Agent"] = agent  # type: ignore[assignment]
    form = answered(web.get(edge.server.url("/login"), timeout=30))
    if api.status_code == 400:  # gunicorn refuses NUL and other controls in a header value before the app runs
        assert form.status_code == 400
        return
    r = web.post(edge.server.url("/login"), data={"username": edge.bob, "password": edge.password,
                                                  "csrf_token": csrf_from(form.text)},
                 timeout=30, allow_redirects=False)
    assert answered(r).status_code == 303, r.status_code
    assert answered(web.get(edge.server.url("/sessions"), timeout=30)).status_code == 200
