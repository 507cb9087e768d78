"""End-to-end over real HTTPS: the real `sessionward serve` (gunicorn) and `requests`, plus the admin CLI
against the same instance. Security ids refer to shared/SECURITY.md (C2, C3, C5, C8, C9, C10, C11, C12, O1)."""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Callable, Iterator

import pytest
import requests
from serverproc import ADMIN_BANNER, ServerProcess, csrf_from, login, new_http_session

pytestmark = pytest.mark.server

COOKIE = "__Host-session"
LOGIN_COOKIE = "__Host-login-csrf"


# -- helpers -----------------------------------------------------------------------------------

def set_cookies(response: requests.Response) -> dict[str, dict[str, str]]:
    """Every Set-Cookie of one response: name -> {"value": ..., "raw": ..., lower-case attribute: value}."""
    cookies: dict[str, dict[str, str]] = {}
    for raw in response.raw.headers.getlist("Set-Cookie"):
        first, *attrs = [part.strip() for part in raw.split(";")]
        name, _, value = first.partition("=")
        parsed = {"value": value, "raw": raw}
        for attr in attrs:
            key, _, val = attr.partition("=")
            parsed[key.strip().lower()] = val.strip() if val else "<flag>"
        cookies[name] = parsed
    return cookies


def is_expired(cookie: dict[str, str]) -> bool:
    return cookie.get("max-age") == "0" or "1970" in cookie.get("expires", "")


def new_password() -> str:
    return "e2e-" + secrets.token_urlsafe(12)


def fresh_get(server: ServerProcess, path: str, *, cookie: str | None = None) -> requests.Response:
    """A GET with exactly the given Cookie header (no jar), redirects not followed."""
    headers = {"Cookie": cookie} if cookie is not None else {}
    return requests.get(server.url(path), headers=headers, verify=server.verify, timeout=10, allow_redirects=False)


def signed_in(server: ServerProcess, session_value: str) -> bool:
    """Does this session cookie value open the dashboard?"""
    r = fresh_get(server, "/dashboard", cookie=f"{COOKIE}={session_value}")
    if r.status_code == 200:
        return True
    assert r.status_code == 303 and r.headers["Location"].startswith("/login"), (r.status_code, r.headers)
    return False


@pytest.fixture(scope="module")
def user(server: ServerProcess) -> tuple[str, str]:
    """A plain user for this module (so the admin account is never throttled by failure tests)."""
    name, password = "erin", new_password()
    server.add_user(name, password)
    return name, password


@pytest.fixture
def admin(server: ServerProcess) -> Iterator[requests.Session]:
    http = new_http_session(server)
    r = login(http, server, "admin", server.admin_password or "")
    assert r.status_code == 303, r.text[:500]
    yield http
    http.close()


# -- login -------------------------------------------------------------------------------------

def test_admin_password_from_stdout_signs_in(server: ServerProcess) -> None:
    http = new_http_session(server)
    r = login(http, server, "admin", server.admin_password or "")
    assert r.status_code == 303 and r.headers["Location"] == "/dashboard"
    page = http.get(server.url("/dashboard"), allow_redirects=False, timeout=10)
    assert page.status_code == 200
    assert '<span id="username">admin</span>' in page.text
    assert "Welcome, " in page.text


def test_login_form_needs_its_csrf_token(server: ServerProcess, user: tuple[str, str]) -> None:  # C10
    name, password = user
    http = new_http_session(server)
    form = http.get(server.url("/login"), timeout=10)
    assert LOGIN_COOKIE in set_cookies(form), "the login form's pre-session cookie is missing"
    token = csrf_from(form.text)
    cases = {
        "missing": {"username": name, "password": password},
        "wrong": {"username": name, "password": password, "csrf_token": "x" * len(token)},
        "empty": {"username": name, "password": password, "csrf_token": ""},
    }
    for case, data in cases.items():
        r = http.post(server.url("/login"), data=data, allow_redirects=False, timeout=10)
        assert r.status_code == 403, (case, r.status_code)
        assert COOKIE not in set_cookies(r), case
    # the right token without its pre-session cookie is refused too (login CSRF)
    r = requests.post(
        server.url("/login"), data={"username": name, "password": password, "csrf_token": token},
        verify=server.verify, allow_redirects=False, timeout=10,
    )
    assert r.status_code == 403
    # and with both, it works
    r = http.post(server.url("/login"), data={"username": name, "password": password, "csrf_token": token},
                  allow_redirects=False, timeout=10)
    assert r.status_code == 303


def test_wrong_password_and_unknown_user_get_the_same_generic_401(server: ServerProcess, user: tuple[str, str]) -> None:
    name, _ = user
    http = new_http_session(server)
    wrong = login(http, server, name, "not-the-password-123")
    unknown = login(http, server, "nobody-" + secrets.token_hex(4), "not-the-password-123")
    assert wrong.status_code == unknown.status_code == 401
    for r in (wrong, unknown):
        assert COOKIE not in set_cookies(r)
        assert 'class="error"' in r.text
    error = lambda r: r.text.split('class="error"', 1)[1].split("</p>", 1)[0]  # noqa: E731
    assert error(wrong) == error(unknown)
    message = error(wrong).lower()
    assert "password" not in message or "username or password" in message, message  # says nothing specific
    assert "not-the-password-123" not in wrong.text  # the password is never echoed back


def test_login_next_is_not_an_open_redirect(server: ServerProcess, user: tuple[str, str]) -> None:
    http = new_http_session(server)
    r = login(http, server, *user, next="//evil.example/x")
    assert r.status_code == 303 and r.headers["Location"] == "/dashboard"


# -- the cookie (C8) ---------------------------------------------------------------------------

def test_session_cookie_attributes(server: ServerProcess, user: tuple[str, str]) -> None:
    http = new_http_session(server)
    r = login(http, server, *user)
    cookies = set_cookies(r)
    assert COOKIE in cookies, list(cookies)
    c = cookies[COOKIE]
    assert c.get("secure") == "<flag>", c["raw"]
    assert c.get("httponly") == "<flag>", c["raw"]
    assert c.get("samesite", "").lower() == "lax", c["raw"]
    assert c.get("path") == "/", c["raw"]
    assert "domain" not in c, c["raw"]
    assert len(c["raw"].encode()) <= 4096
    assert len(c["value"]) >= 43  # 256 bits of token_urlsafe
    # the login form's pre-session cookie follows the same rules
    form_cookie = set_cookies(http.get(server.url("/login"), timeout=10, allow_redirects=False))
    for raw in [v["raw"] for v in form_cookie.values()]:
        assert "Secure" in raw and "HttpOnly" in raw and "Path=/" in raw and "Domain" not in raw, raw


# -- security headers (C11) --------------------------------------------------------------------

def _script_src(csp: str) -> str:
    directives = {d.strip().split(" ", 1)[0]: d.strip() for d in csp.split(";") if d.strip()}
    return directives.get("script-src") or directives.get("default-src", "")


def test_security_headers_on_public_and_authenticated_pages(server: ServerProcess, admin: requests.Session) -> None:
    public = requests.get(server.url("/login"), verify=server.verify, timeout=10)
    dashboard = admin.get(server.url("/dashboard"), allow_redirects=False, timeout=10)
    assert dashboard.status_code == 200
    for r in (public, dashboard):
        h = r.headers
        csp = h["Content-Security-Policy"]
        assert "'unsafe-inline'" not in _script_src(csp) and "'unsafe-eval'" not in _script_src(csp), csp
        assert "frame-ancestors 'none'" in csp
        assert "max-age=" in h["Strict-Transport-Security"]
        assert int(h["Strict-Transport-Security"].split("max-age=")[1].split(";")[0]) >= 31536000
        assert h["X-Content-Type-Options"] == "nosniff"
        assert h["Referrer-Policy"] in ("no-referrer", "strict-origin-when-cross-origin", "same-origin")
    assert "no-store" in dashboard.headers["Cache-Control"]


# -- logout (C5) -------------------------------------------------------------------------------

def test_logout_post_ends_the_session_everywhere(server: ServerProcess, admin: requests.Session) -> None:
    value = admin.cookies.get(COOKIE)
    assert value and signed_in(server, value)
    token = csrf_from(admin.get(server.url("/dashboard"), timeout=10).text)
    r = admin.post(server.url("/logout"), data={"csrf_token": token}, allow_redirects=False, timeout=10)
    assert r.status_code == 303 and r.headers["Location"] == "/login"
    assert "cookies" in r.headers.get("Clear-Site-Data", "")
    cleared = set_cookies(r)
    assert COOKIE in cleared and is_expired(cleared[COOKIE]), r.headers.get("Set-Cookie")
    # a copy of the old cookie is worthless: the server record is gone
    assert not signed_in(server, value)


def test_logout_needs_the_csrf_token(server: ServerProcess, admin: requests.Session) -> None:
    value = admin.cookies.get(COOKIE)
    for data in ({}, {"csrf_token": "forged"}):
        r = admin.post(server.url("/logout"), data=data, allow_redirects=False, timeout=10)
        assert r.status_code == 403, data
    assert signed_in(server, value)


def test_get_logout_changes_nothing(server: ServerProcess, admin: requests.Session) -> None:
    value = admin.cookies.get(COOKIE)
    r = admin.get(server.url("/logout"), allow_redirects=False, timeout=10)
    assert r.status_code == 405
    assert "POST" in r.headers.get("Allow", "")
    assert COOKIE not in set_cookies(r)
    assert signed_in(server, value)


# -- fixation (C3) and adoption (C2) -----------------------------------------------------------

def test_no_session_cookie_before_login(server: ServerProcess) -> None:
    r = requests.get(server.url("/login"), verify=server.verify, timeout=10)
    assert COOKIE not in set_cookies(r)


def test_login_issues_a_new_id_and_the_planted_one_dies(server: ServerProcess, user: tuple[str, str]) -> None:
    # the attacker signs in and plants their own live session cookie in the victim's browser
    attacker = new_http_session(server)
    assert login(attacker, server, *user).status_code == 303
    planted = attacker.cookies.get(COOKIE)
    assert planted and signed_in(server, planted)
    victim = new_http_session(server)
    token = csrf_from(victim.get(server.url("/login"), timeout=10).text)
    victim.cookies.set(COOKIE, planted, domain=server.host, path="/")
    r = victim.post(
        server.url("/login"),
        data={"username": "admin", "password": server.admin_password, "csrf_token": token},
        allow_redirects=False, timeout=10,
    )
    assert r.status_code == 303
    issued = set_cookies(r)[COOKIE]["value"]
    assert issued != planted
    assert signed_in(server, issued)
    assert not signed_in(server, planted)  # the pre-login id stops working


def test_made_up_session_cookie_is_not_adopted(server: ServerProcess, user: tuple[str, str]) -> None:
    made_up = secrets.token_urlsafe(32)  # exactly the shape of a real id
    rows_before = _all_session_rows(server)
    r = fresh_get(server, "/dashboard", cookie=f"{COOKIE}={made_up}")
    assert _all_session_rows(server) == rows_before  # loading an unknown id creates no record
    assert r.status_code == 303 and r.headers["Location"].startswith("/login")
    issued = set_cookies(r).get(COOKIE)
    assert issued is None or is_expired(issued), issued  # never a live cookie with that value
    # logging in with the made-up value present gives a different, server-made id
    http = new_http_session(server)
    http.cookies.set(COOKIE, made_up, domain=server.host, path="/")
    r = login(http, server, *user)
    assert r.status_code == 303
    assert set_cookies(r)[COOKIE]["value"] != made_up
    assert not signed_in(server, made_up)


def _all_session_rows(server: ServerProcess) -> list[str]:
    result = server.cli("sessions", "list")
    assert result.returncode == 0, result.stderr
    return sorted(line.split()[0] for line in result.stdout.strip().splitlines()[1:])


# -- cookie tossing and ids in URLs (C9) -------------------------------------------------------

def test_two_session_cookies_mean_not_signed_in(server: ServerProcess, admin: requests.Session) -> None:
    value = admin.cookies.get(COOKIE)
    assert fresh_get(server, "/dashboard", cookie=f"{COOKIE}={value}").status_code == 200
    for header in (
        f"{COOKIE}={value}; {COOKIE}={secrets.token_urlsafe(32)}",
        f"{COOKIE}={secrets.token_urlsafe(32)}; {COOKIE}={value}",
        f"{COOKIE}={value}; {COOKIE}={value}",
    ):
        r = fresh_get(server, "/dashboard", cookie=header)
        assert r.status_code == 303 and r.headers["Location"].startswith("/login"), header


def test_session_id_in_the_url_is_ignored(server: ServerProcess, admin: requests.Session) -> None:
    value = admin.cookies.get(COOKIE)
    for path in (f"/dashboard?{COOKIE}={value}", f"/dashboard?session={value}", f"/dashboard;{COOKIE}={value}"):
        r = fresh_get(server, path)
        assert r.status_code in (303, 404), path
        assert r.status_code == 404 or r.headers["Location"].startswith("/login"), path
        assert COOKIE not in set_cookies(r), path


# -- operation (O1) ----------------------------------------------------------------------------

def test_secrets_file_is_private(server: ServerProcess) -> None:
    for name in ("secrets.json", "tls-key.pem"):
        mode = stat.S_IMODE((server.instance / name).stat().st_mode)
        assert mode == 0o600, f"{name}: {mode:o}"


def test_no_debugger_and_no_tracebacks_on_error_paths(server: ServerProcess, admin: requests.Session) -> None:
    responses = [
        requests.get(server.url("/no-such-page"), verify=server.verify, timeout=10),
        requests.put(server.url("/login"), verify=server.verify, timeout=10),
        requests.post(server.url("/login"), data={"x": "y" * 100_000}, verify=server.verify, timeout=10),
        requests.post(server.url("/login"), data=b"\xff\xfe%%%=&&", verify=server.verify, timeout=10,
                      headers={"Content-Type": "application/x-www-form-urlencoded"}),
        requests.get(server.url("/dashboard"), headers={"Cookie": f"{COOKIE}=\x7f%%"}, verify=server.verify,
                     timeout=10),
        admin.post(server.url("/sessions/" + "x" * 300 + "/end"),
                   data={"csrf_token": csrf_from(admin.get(server.url("/sessions"), timeout=10).text)}, timeout=10),
        # Werkzeug's debugger answers these on any path when it is on
        requests.get(server.url("/login?__debugger__=yes&cmd=resource&f=debugger.js"), verify=server.verify,
                     timeout=10),
        requests.get(server.url("/console"), verify=server.verify, timeout=10),
    ]
    for r in responses:
        assert r.status_code < 500, (r.request.method, r.url[:80], r.status_code)
        for marker in ("Traceback", "Werkzeug Debugger", "__debugger__", "werkzeug/debug", "File \""):
            assert marker not in r.text, (r.url[:80], marker)
    assert responses[0].status_code == 404
    assert responses[1].status_code == 405
    assert responses[2].status_code in (403, 413)
    assert "Debugger is active" not in server.output_text()


# -- the admin CLI against the same instance ---------------------------------------------------

def _session_ids(server: ServerProcess, name: str) -> list[str]:
    result = server.cli("sessions", "list", "--user", name)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("ID")
    return [line.split()[0] for line in lines[1:]]


def test_cli_users_add_list_and_sessions_revoke(server: ServerProcess) -> None:
    name, password = "cli-" + secrets.token_hex(3), new_password()
    added = server.cli("users", "add", name, "--password-stdin", input=password + "\n")
    assert added.returncode == 0, added.stderr
    listed = server.cli("users", "list")
    assert listed.returncode == 0
    rows = {line.split()[0]: line.split()[1] for line in listed.stdout.splitlines()[1:]}
    assert rows.get(name) == "active" and "admin" in rows
    assert password not in added.stdout + listed.stdout

    http = new_http_session(server)
    assert login(http, server, name, password).status_code == 303
    value = http.cookies.get(COOKIE)
    assert signed_in(server, value)
    ids = _session_ids(server, name)
    assert len(ids) == 1
    assert value not in ids[0] and ids[0] not in value  # the public id is not the cookie secret

    revoked = server.cli("sessions", "revoke", ids[0])
    assert revoked.returncode == 0, revoked.stderr
    assert not signed_in(server, value)
    assert _session_ids(server, name) == []


def test_cli_users_disable_ends_the_users_sessions(server: ServerProcess) -> None:
    name, password = "gone-" + secrets.token_hex(3), new_password()
    server.add_user(name, password)
    http = new_http_session(server)
    assert login(http, server, name, password).status_code == 303
    value = http.cookies.get(COOKIE)
    assert signed_in(server, value)
    result = server.cli("users", "disable", name)
    assert result.returncode == 0, result.stderr
    assert not signed_in(server, value)
    # and the account cannot sign in again
    assert login(new_http_session(server), server, name, password).status_code in (401, 403)


@pytest.mark.parametrize(
    "args",
    [
        ("sessions", "revoke", "no-such-session-id"),
        ("users", "disable", "no-such-user"),
        ("users", "list", "--bogus-flag"),
        ("sessions", "list", "--user", "no-such-user"),
    ],
)
def test_cli_bad_arguments_give_one_line_and_nonzero(server: ServerProcess, args: tuple[str, ...]) -> None:
    result = server.cli(*args)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("sessionward: error:"), result.stderr


def test_cli_weak_password_is_refused_cleanly(server: ServerProcess) -> None:
    result = server.cli("users", "add", "weak-" + secrets.token_hex(3), "--password-stdin", input="password\n")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


# -- the server process itself -----------------------------------------------------------------

def test_restart_keeps_sessions_and_stop_leaves_no_process(start_server: Callable[..., ServerProcess]) -> None:
    srv = start_server()
    assert srv.admin_password
    secrets_json = (srv.instance / "secrets.json").read_bytes()
    http = new_http_session(srv)
    assert login(http, srv, "admin", srv.admin_password).status_code == 303
    value = http.cookies.get(COOKIE)
    pgid = srv.pgid
    assert pgid is not None
    srv.restart()
    assert srv.pgid != pgid
    with pytest.raises(ProcessLookupError):
        os.killpg(pgid, 0)  # master and workers of the first run are all gone
    # same port, same instance: keys kept, no second admin password, the session survives
    assert (srv.instance / "secrets.json").read_bytes() == secrets_json
    assert sum(ADMIN_BANNER in line for line in srv.output) == 1
    assert signed_in(srv, value)
    pgid = srv.pgid
    srv.stop()
    with pytest.raises(ProcessLookupError):
        os.killpg(pgid, 0)
    with pytest.raises(requests.ConnectionError):
        requests.get(srv.url("/healthz"), verify=srv.verify, timeout=2)


# -- C14: ending someone else's session needs a recent login ------------------------------------

def test_C14_stale_session_and_refreshed_token_cannot_end_other_sessions(
    start_server: Callable[..., ServerProcess]
) -> None:
    """A server whose re-authentication window is 1 s: a stale browser session is sent to /reauth before it may
    end another session, a refreshed (not fresh) token gets 401 insufficient_user_authentication; the other
    session survives both, and after a fresh login each succeeds."""
    import re
    import time

    import jwt

    srv = start_server(env={"SESSIONWARD_SESSION_REAUTH_WINDOW": "1"})
    password = srv.admin_password or ""
    mine, other = new_http_session(srv), new_http_session(srv)
    for http in (mine, other):
        assert login(http, srv, "admin", password).status_code == 303
    page = mine.get(srv.url("/sessions"), timeout=10, allow_redirects=False).text
    own = re.search(r'<tr class="current">.*?action="/sessions/([^"/]+)/end"', page, re.S)
    assert own, "the current session is marked"
    target = next(i for i in re.findall(r'action="/sessions/([^"/]+)/end"', page) if i != own.group(1))
    time.sleep(1.5)  # the login is now older than the re-authentication window

    def end_target() -> requests.Response:
        token = csrf_from(mine.get(srv.url("/sessions"), timeout=10, allow_redirects=False).text)
        return mine.post(srv.url(f"/sessions/{target}/end"), data={"csrf_token": token}, timeout=10,
                         allow_redirects=False)

    r = end_target()
    assert r.status_code == 303 and r.headers["Location"] == "/reauth?next=/sessions"
    assert other.get(srv.url("/dashboard"), timeout=10, allow_redirects=False).status_code == 200
    form = mine.get(srv.url("/reauth?next=/sessions"), timeout=10, allow_redirects=False).text
    r = mine.post(srv.url("/reauth"), data={"csrf_token": csrf_from(form), "password": password, "next": "/sessions"},
                  timeout=10, allow_redirects=False)
    assert r.status_code == 303 and r.headers["Location"] == "/sessions"
    r = end_target()
    assert r.status_code == 303 and r.headers["Location"] == "/sessions?done=ended"
    assert other.get(srv.url("/dashboard"), timeout=10, allow_redirects=False).status_code == 303

    api = new_http_session(srv)

    def token_login() -> dict[str, str]:
        r = api.post(srv.url("/api/login"), json={"username": "admin", "password": password}, timeout=10)
        assert r.status_code == 200, r.text[:300]
        return r.json()  # type: ignore[no-any-return]

    owner = token_login()
    owner_family = jwt.decode(owner["access_token"], options={"verify_signature": False})["sid"]
    stale = api.post(srv.url("/api/refresh"), json={"refresh_token": token_login()["refresh_token"]}, timeout=10).json()
    r = api.delete(srv.url(f"/api/sessions/{owner_family}"),
                   headers={"Authorization": f"Bearer {stale['access_token']}"}, timeout=10)
    assert r.status_code == 401 and 'error="insufficient_user_authentication"' in r.headers["WWW-Authenticate"]
    profile = {"Authorization": f"Bearer {owner['access_token']}"}
    assert api.get(srv.url("/api/profile"), headers=profile, timeout=10).status_code == 200
    fresh = token_login()
    r = api.delete(srv.url(f"/api/sessions/{owner_family}"),
                   headers={"Authorization": f"Bearer {fresh['access_token']}"}, timeout=10)
    assert r.status_code == 204
    assert api.get(srv.url("/api/profile"), headers=profile, timeout=10).status_code == 401
    srv.stop()
