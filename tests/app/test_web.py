"""The lab's Part 1 done right, through the Flask test client: C2-C13, A2-A4, O1, O4."""

from __future__ import annotations

import os
import stat
from http.cookies import SimpleCookie

import pytest
from webtest import BASE, PASSWORD, form_token, login, page_token  # type: ignore[import-not-found]

from sessionward.app import create_app
from sessionward.exceptions import ConfigError

COOKIE = "__Host-session"


def session_cookie_header(response) -> str:
    headers = [h for h in response.headers.getlist("Set-Cookie") if h.startswith(COOKIE + "=")]
    assert len(headers) == 1, response.headers.getlist("Set-Cookie")
    return headers[0]


def cookie_value(response) -> str:
    parsed = SimpleCookie()
    parsed.load(session_cookie_header(response))
    return parsed[COOKIE].value


def test_login_dashboard_logout_flow(web, alice):
    c = web.client()
    r = login(c, "alice")
    assert r.status_code == 303 and r.headers["Location"].endswith("/dashboard")
    page = c.get("/dashboard", base_url=BASE)
    assert page.status_code == 200 and "Welcome, <span id=\"username\">alice</span>" in page.get_data(as_text=True)
    r = c.post("/logout", base_url=BASE, data={"csrf_token": form_token(page.get_data(as_text=True))})
    assert r.status_code == 303
    assert c.get("/dashboard", base_url=BASE).status_code == 303


def test_C8_cookie_attributes(web, alice):
    header = session_cookie_header(login(web.client(), "alice"))
    attrs = [a.strip().lower() for a in header.split(";")]
    assert header.startswith("__Host-session=")
    assert "secure" in attrs and "httponly" in attrs and "samesite=lax" in attrs and "path=/" in attrs
    assert not any(a.startswith("domain") for a in attrs)
    assert len(header.encode()) <= 4096


def test_C8_samesite_strict_configurable(tmp_path):
    app = create_app(tmp_path / "i", config={"SESSIONWARD_COOKIE_SAMESITE": "Strict"})
    with app.app_context():
        from sessionward.flask import state

        state().users.create("alice", PASSWORD)
    header = session_cookie_header(login(app.test_client(), "alice"))
    assert "samesite=strict" in header.lower()


@pytest.mark.parametrize("bad", [{"SESSIONWARD_COOKIE_SAMESITE": "lax-ish"}, {"SESSIONWARD_COOKIE_NAME": "a b"},
                                 {"SESSIONWARD_SESSION_IDLE_TIMEOUT": "-5"}, {"SESSIONWARD_CSRF_KEY": b"short"}])
def test_config_validated_at_start_up_naming_the_setting(tmp_path, bad):
    with pytest.raises(ConfigError) as info:
        create_app(tmp_path / "i", config=bad)
    name = next(iter(bad)).removeprefix("SESSIONWARD_")
    assert name.split("_")[-1] in str(info.value).upper().replace(" ", "_") or info.value.setting.endswith(
        name.split("_")[-1]
    )


def test_C2_made_up_cookie_not_adopted_and_no_record_created(web, alice):
    c = web.client()
    before = len(web.state.store.list_all(now=web.clock.now()))
    c.set_cookie(COOKIE, "A" * 43, domain="localhost")
    r = c.get("/dashboard", base_url=BASE)
    assert r.status_code == 303 and "/login" in r.headers["Location"]
    assert len(web.state.store.list_all(now=web.clock.now())) == before
    # and the dead cookie is expired in the response
    assert any(h.startswith(COOKIE + "=;") for h in r.headers.getlist("Set-Cookie"))


def test_C3_fixation_pre_login_cookie_dies(web, alice):
    web.add_user("mallory")
    attacker = web.client()
    planted = cookie_value(login(attacker, "mallory"))
    victim = web.client()
    token = form_token(victim.get("/login", base_url=BASE).get_data(as_text=True))
    victim.set_cookie(COOKIE, planted, domain="localhost")  # attacker plants their cookie in the victim's browser
    r = victim.post("/login", base_url=BASE, data={"username": "alice", "password": PASSWORD, "csrf_token": token})
    new = cookie_value(r)
    assert new != planted
    replay = web.client()
    replay.set_cookie(COOKIE, planted, domain="localhost")
    assert replay.get("/dashboard", base_url=BASE).status_code == 303


def test_C4_idle_and_absolute_expiry_through_the_app(web, alice):
    c = web.client()
    login(c, "alice")
    web.clock.advance(31 * 60)
    assert c.get("/dashboard", base_url=BASE).status_code == 303
    login(c, "alice")
    for _ in range(12 * 4):
        web.clock.advance(15 * 60)
        if c.get("/dashboard", base_url=BASE).status_code != 200:
            break
    assert c.get("/dashboard", base_url=BASE).status_code == 303
    assert web.clock.now() <= 1_800_000_000 + 31 * 60 + 12 * 3600 + 15 * 60 + 1


def test_C5_logout_requires_post_and_csrf_and_clears_everything(web, alice):
    c = web.client()
    old = cookie_value(login(c, "alice"))
    assert c.get("/logout", base_url=BASE).status_code == 405
    assert c.get("/dashboard", base_url=BASE).status_code == 200  # GET changed nothing
    assert c.post("/logout", base_url=BASE).status_code == 403  # no token
    assert c.get("/dashboard", base_url=BASE).status_code == 200
    r = c.post("/logout", base_url=BASE, data={"csrf_token": page_token(c)})
    assert r.status_code == 303
    assert r.headers["Clear-Site-Data"] == '"cache", "cookies", "storage"'
    expired = session_cookie_header(r)
    assert "expires=thu, 01 jan 1970" in expired.lower() or "max-age=0" in expired.lower()
    replay = web.client()
    replay.set_cookie(COOKIE, old, domain="localhost")
    assert replay.get("/dashboard", base_url=BASE).status_code == 303


def test_C6_password_change_ends_all_sessions(web, alice):
    phone, laptop = web.client(), web.client()
    login(phone, "alice")
    login(laptop, "alice")
    page = laptop.get("/password", base_url=BASE)
    assert page.status_code == 200
    r = laptop.post("/password", base_url=BASE, data={
        "csrf_token": form_token(page.get_data(as_text=True)), "current_password": PASSWORD,
        "new_password": "a much better passphrase", "confirm_password": "a much better passphrase"})
    assert r.status_code == 303
    assert phone.get("/dashboard", base_url=BASE).status_code == 303
    assert laptop.get("/dashboard", base_url=BASE).status_code == 200  # continues in a new session
    fresh = web.client()
    assert login(fresh, "alice").status_code == 401
    assert login(fresh, "alice", "a much better passphrase").status_code == 303


def test_C6_password_change_checks_current_password_and_policy(web, alice):
    c = web.client()
    login(c, "alice")
    token = page_token(c, "/password")
    r = c.post("/password", base_url=BASE, data={"csrf_token": token, "current_password": "wrong",
                                                   "new_password": "another good one",
                                                   "confirm_password": "another good one"})
    assert r.status_code == 401
    r = c.post("/password", base_url=BASE, data={"csrf_token": token, "current_password": PASSWORD,
                                                   "new_password": "password", "confirm_password": "password"})
    assert r.status_code == 422 and "common" in r.get_data(as_text=True).lower()


def test_C6_disabled_account_is_logged_out(web, alice):
    c = web.client()
    login(c, "alice")
    web.state.users.set_disabled(alice.id, True)
    assert c.get("/dashboard", base_url=BASE).status_code == 303
    assert login(web.client(), "alice").status_code == 401


def test_C7_sessions_page_lists_and_ends_sessions(web, alice):
    mine, other = web.client(), web.client()
    login(mine, "alice")
    login(other, "alice")
    page = mine.get("/sessions", base_url=BASE, headers={"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/120"})
    html = page.get_data(as_text=True)
    assert "(this session)" in html and html.count("<tr") == 3  # header + 2 sessions
    ids = [r.id for r in web.state.sessions.list_for_user(alice.id)]
    this_id = web.state.sessions.load(mine.get_cookie(COOKIE).value).id
    other_id = next(i for i in ids if i != this_id)
    r = mine.post(f"/sessions/{other_id}/end", base_url=BASE, data={"csrf_token": form_token(html)})
    assert r.status_code == 303
    assert other.get("/dashboard", base_url=BASE).status_code == 303
    assert mine.get("/dashboard", base_url=BASE).status_code == 200
    assert mine.post("/sessions/nope/end", base_url=BASE, data={"csrf_token": form_token(html)}).status_code == 404


def test_C7_end_all_others(web, alice):
    mine, other = web.client(), web.client()
    login(mine, "alice")
    login(other, "alice")
    r = mine.post("/sessions/end-others", base_url=BASE, data={"csrf_token": page_token(mine, "/sessions")})
    assert r.status_code == 303
    assert other.get("/dashboard", base_url=BASE).status_code == 303
    assert mine.get("/dashboard", base_url=BASE).status_code == 200


def test_C14_stale_session_ends_another_only_after_reauth(web, alice):
    """A thief holding a stolen (stale) cookie cannot end the owner's sessions one by one: it is sent to
    re-authenticate, and the other session keeps working until the password is given."""
    mine, other = web.client(), web.client()
    login(mine, "alice")
    login(other, "alice")
    this_id = web.state.sessions.load(mine.get_cookie(COOKIE).value).id
    other_id = next(r.id for r in web.state.sessions.list_for_user(alice.id) if r.id != this_id)
    web.clock.advance(11 * 60)  # past the 10-minute re-authentication window, within the idle timeout
    r = mine.post(f"/sessions/{other_id}/end", base_url=BASE, data={"csrf_token": page_token(mine, "/sessions")})
    assert r.status_code == 303 and r.headers["Location"] == "/reauth?next=/sessions"
    assert other.get("/dashboard", base_url=BASE).status_code == 200  # still alive
    # an id that does not exist gets the same answer: a stale session learns nothing about ids
    r = mine.post("/sessions/nope/end", base_url=BASE, data={"csrf_token": page_token(mine, "/sessions")})
    assert r.status_code == 303 and r.headers["Location"] == "/reauth?next=/sessions"

    page = mine.get("/reauth?next=/sessions", base_url=BASE)
    r = mine.post("/reauth", base_url=BASE, data={"csrf_token": form_token(page.get_data(as_text=True)),
                                                   "password": PASSWORD, "next": "/sessions"})
    assert r.status_code == 303 and r.headers["Location"] == "/sessions"
    r = mine.post(f"/sessions/{other_id}/end", base_url=BASE, data={"csrf_token": page_token(mine, "/sessions")})
    assert r.status_code == 303 and r.headers["Location"] == "/sessions?done=ended"
    assert other.get("/dashboard", base_url=BASE).status_code == 303
    assert mine.get("/dashboard", base_url=BASE).status_code == 200


def test_C14_ending_ones_own_session_needs_no_recent_login(web, alice):
    c = web.client()
    login(c, "alice")
    own = web.state.sessions.load(c.get_cookie(COOKIE).value).id
    web.clock.advance(11 * 60)
    r = c.post(f"/sessions/{own}/end", base_url=BASE, data={"csrf_token": page_token(c, "/sessions")})
    assert r.status_code == 303 and r.headers["Location"] == "/login"  # a logout
    assert c.get("/dashboard", base_url=BASE).status_code == 303
    assert web.state.sessions.list_for_user(alice.id) == []


def test_C9_two_session_cookies_refused(web, alice):
    c = web.client()
    value = cookie_value(login(c, "alice"))
    r = web.raw_client().get("/dashboard", base_url=BASE, headers={"Cookie": f"{COOKIE}={value}; {COOKIE}=x"})
    assert r.status_code == 303
    r = web.raw_client().get("/dashboard", base_url=BASE, headers={"Cookie": f"{COOKIE}={value}"})
    assert r.status_code == 200


def test_C9_session_id_in_url_ignored(web, alice):
    value = cookie_value(login(web.client(), "alice"))
    c = web.client()
    for path in (f"/dashboard?{COOKIE}={value}", f"/dashboard?session={value}", f"/dashboard;{COOKIE}={value}"):
        assert c.get(path, base_url=BASE).status_code in (303, 404)
    assert c.post("/dashboard", base_url=BASE, data={COOKIE: value}).status_code in (303, 405)


def test_C10_unsafe_request_needs_token_bound_to_session(web, alice):
    web.add_user("bob")
    a, b = web.client(), web.client()
    login(a, "alice")
    login(b, "bob")
    bobs_token = page_token(b)
    assert a.post("/sessions/end-others", base_url=BASE).status_code == 403
    assert a.post("/sessions/end-others", base_url=BASE, data={"csrf_token": bobs_token}).status_code == 403
    assert a.post("/sessions/end-others", base_url=BASE, data={"csrf_token": "x" * 43}).status_code == 403
    ok = a.post("/sessions/end-others", base_url=BASE, headers={"X-CSRF-Token": page_token(a)})
    assert ok.status_code == 303


def test_C10_cross_site_origin_refused_even_with_token(web, alice):
    c = web.client()
    login(c, "alice")
    token = page_token(c)
    for headers in ({"Origin": "https://attacker.test"}, {"Sec-Fetch-Site": "cross-site"}, {"Origin": "null"}):
        r = c.post("/logout", base_url=BASE, data={"csrf_token": token}, headers=headers)
        assert r.status_code == 403, headers
    assert c.get("/dashboard", base_url=BASE).status_code == 200
    r = c.post("/logout", base_url=BASE, data={"csrf_token": token},
               headers={"Origin": BASE, "Sec-Fetch-Site": "same-origin"})
    assert r.status_code == 303


def test_C10_login_form_has_its_own_pre_session_token(web, alice):
    c = web.client()
    assert c.post("/login", base_url=BASE, data={"username": "alice", "password": PASSWORD}).status_code == 403
    page = c.get("/login", base_url=BASE)
    assert "__Host-login-csrf=" in " ".join(page.headers.getlist("Set-Cookie"))
    stranger = web.client()  # a token from another browser does not fit this browser's nonce
    stranger_token = form_token(stranger.get("/login", base_url=BASE).get_data(as_text=True))
    r = c.post("/login", base_url=BASE, data={"username": "alice", "password": PASSWORD, "csrf_token": stranger_token})
    assert r.status_code == 403


def test_C11_security_headers_everywhere_and_no_store_when_signed_in(web, alice):
    c = web.client()
    public = c.get("/login", base_url=BASE)
    for r in (public, c.get("/healthz", base_url=BASE), c.get("/nope", base_url=BASE)):
        csp = r.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["Referrer-Policy"] == "no-referrer"
        assert r.headers["Strict-Transport-Security"].startswith("max-age=")
    login(c, "alice")
    assert c.get("/dashboard", base_url=BASE).headers["Cache-Control"] == "no-store"
    plain = web.client().get("/login", base_url="http://localhost")
    assert "Strict-Transport-Security" not in plain.headers  # HSTS only over TLS


def test_C12_username_is_escaped(web):
    web.add_user("<script>alert(1)</script>", "correct horse battery staple")
    c = web.client()
    login(c, "<script>alert(1)</script>")
    html = c.get("/dashboard", base_url=BASE).get_data(as_text=True)
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_C13_sensitive_actions_need_recent_login(web, alice):
    c = web.client()
    login(c, "alice")
    web.clock.advance(11 * 60)
    r = c.get("/password", base_url=BASE)
    assert r.status_code == 303 and r.headers["Location"].startswith("/reauth")
    r = c.post("/sessions/end-others", base_url=BASE, data={"csrf_token": page_token(c)})
    assert r.status_code == 303 and r.headers["Location"].startswith("/reauth")
    before = c.get_cookie(COOKIE).value
    page = c.get("/reauth?next=/password", base_url=BASE)
    bad = c.post("/reauth", base_url=BASE, data={"csrf_token": form_token(page.get_data(as_text=True)),
                                                  "password": "wrong", "next": "/password"})
    assert bad.status_code == 401
    r = c.post("/reauth", base_url=BASE, data={"csrf_token": form_token(page.get_data(as_text=True)),
                                                "password": PASSWORD, "next": "/password"})
    assert r.status_code == 303 and r.headers["Location"] == "/password"
    assert c.get_cookie(COOKIE).value != before  # re-authentication rotates the id
    assert c.get("/password", base_url=BASE).status_code == 200


def test_A3_throttled_login_answers_429_with_retry_after(web, alice):
    c = web.client()
    statuses = [login(c, "alice", "wrong password!").status_code for _ in range(7)]
    assert statuses[0] == 401 and 429 in statuses
    r = login(c, "alice", "wrong password!")
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0


def test_A4_same_answer_for_unknown_user_and_wrong_password(web, alice):
    r1, r2 = login(web.client(), "alice", "wrong password!"), login(web.client(), "nobody-here", "wrong password!")
    assert r1.status_code == r2.status_code == 401
    def message(r):
        return r.get_data(as_text=True).split('role="alert">')[1].split("<")[0]
    assert message(r1) == message(r2)


def test_open_redirect_refused(web, alice):
    c = web.client()
    page = c.get("/login?next=//evil.example/x", base_url=BASE)
    token = form_token(page.get_data(as_text=True))
    for target in ("//evil.example/x", "https://evil.example", "/\\evil.example", "javascript:alert(1)"):
        c2 = web.client()
        t = form_token(c2.get("/login", base_url=BASE).get_data(as_text=True))
        r = c2.post("/login", base_url=BASE, data={"username": "alice", "password": PASSWORD, "csrf_token": t,
                                                    "next": target})
        assert r.headers["Location"] == "/dashboard", target
    assert token


def test_O1_debug_refused_and_secrets_file_private(tmp_path):
    with pytest.raises(ConfigError):
        create_app(tmp_path / "d", config={"DEBUG": True})
    create_app(tmp_path / "ok")
    mode = stat.S_IMODE(os.stat(tmp_path / "ok" / "secrets.json").st_mode)
    assert mode == 0o600


def test_O1_secrets_from_environment_win(tmp_path, monkeypatch):
    import secrets as pysecrets

    key = pysecrets.token_bytes(32)
    monkeypatch.setenv("SESSIONWARD_CSRF_KEY", key.hex())
    app = create_app(tmp_path / "e")
    assert app.config["SESSIONWARD_CSRF_KEY"] == key
    monkeypatch.setenv("SESSIONWARD_CSRF_KEY", "not hex")
    with pytest.raises(ConfigError):
        create_app(tmp_path / "e")


@pytest.mark.parametrize("headers", [
    {"Cookie": "__Host-session=" + "\x00" * 10},
    {"Cookie": "__Host-session=" + "A" * 5000},
    {"Cookie": "=;;;==\x7f"},
    {"Origin": "\xff" * 5},
    {"Content-Type": "multipart/form-data; boundary="},
])
def test_O4_malformed_headers_never_500(web, alice, headers):
    c = web.raw_client()
    for method, path in (("GET", "/dashboard"), ("POST", "/login"), ("POST", "/logout")):
        r = c.open(path, method=method, base_url=BASE, headers=headers, data="a=b")
        assert r.status_code < 500, (method, path, r.status_code)
        assert "Traceback" not in r.get_data(as_text=True)


def test_O4_huge_body_is_413(web, alice):
    r = web.client().post("/login", base_url=BASE, data={"username": "x" * (200 * 1024)})
    assert r.status_code == 413


def test_healthz_is_minimal_on_the_service_port_and_detailed_on_management(web):
    r = web.client().get("/healthz", base_url=BASE)
    assert r.status_code == 200
    assert r.get_json() == {"status": "ok"}  # no details for whoever can reach the service port
    detailed = web.management().get("/healthz")
    assert detailed.status_code == 200
    assert detailed.get_json() == {"status": "ok", "checks": {"store": "ok", "database": "ok"}}


def test_metrics_are_not_on_the_service_port(web):
    r = web.client().get("/metrics", base_url=BASE)
    assert r.status_code == 404 and "sessionward_" not in r.get_data(as_text=True)


def test_metrics_count_logins(web, alice):
    before = web.management().get("/metrics").get_data(as_text=True)

    def value(text: str, outcome: str) -> float:
        for line in text.splitlines():
            if line.startswith(f'sessionward_logins_total{{outcome="{outcome}"}}'):
                return float(line.split()[-1])
        return 0.0

    login(web.client(), "alice")
    login(web.client(), "alice", "wrong password!")
    after = web.management().get("/metrics").get_data(as_text=True)
    assert value(after, "succeeded") == value(before, "succeeded") + 1
    assert value(after, "failed") == value(before, "failed") + 1
    assert "sessionward_auth_seconds_bucket" in after


def test_expired_sessions_are_purged_in_the_background(web, alice):
    import time as _time

    login(web.client(), "alice")
    web.clock.advance(13 * 3600)  # past the absolute lifetime
    st = web.state
    assert st.store.purge_expired(now=web.clock.now() - 13 * 3600) == 0  # nothing expired yet at login time
    web.client().get("/login", base_url=BASE)  # any request may trigger the purge (interval passed)
    deadline = _time.monotonic() + 5
    from sessionward.stores.sql import SQLStore

    assert isinstance(st.store, SQLStore)
    import sqlalchemy as sa

    def rows() -> int:
        with st.store.engine.connect() as conn:
            return conn.execute(sa.text("select count(*) from sw_sessions")).scalar_one()

    while rows() and _time.monotonic() < deadline:
        _time.sleep(0.05)
    assert rows() == 0


def test_throttle_policy_is_configurable_and_validated(tmp_path):
    app = create_app(tmp_path / "t", config={"SESSIONWARD_THROTTLE_ACCOUNT_FREE": "2"})
    with app.app_context():
        from sessionward.flask import state

        state().users.create("alice", PASSWORD)
    c = app.test_client()
    statuses = [login(c, "alice", "wrong password!").status_code for _ in range(4)]
    assert statuses[:2] == [401, 401] and 429 in statuses[2:]
    with pytest.raises(ConfigError) as info:
        create_app(tmp_path / "u", config={"SESSIONWARD_THROTTLE_ACCOUNT_FREE": "0"})
    assert "THROTTLE_ACCOUNT_FREE" in str(info.value)


def test_redis_prefix_is_configurable(tmp_path, redis_url):
    import secrets as pysecrets

    import redis

    prefix = f"swtest:{pysecrets.token_hex(4)}:"
    app = create_app(tmp_path / "r", config={"SESSIONWARD_STORE_URL": redis_url, "SESSIONWARD_REDIS_PREFIX": prefix})
    with app.app_context():
        from sessionward.flask import state

        state().users.create("alice", PASSWORD)
    client = redis.Redis.from_url(redis_url)
    try:
        assert login(app.test_client(), "alice").status_code == 303
        keys = list(client.scan_iter(match=prefix + "*"))
        assert keys, "the session went somewhere else than under the configured prefix"
    finally:
        for key in client.scan_iter(match=prefix + "*"):
            client.delete(key)
        client.close()


def test_O6_sqlite_files_are_private_whatever_the_umask(tmp_path):
    """Also when the app is built as a library (no `sessionward` command set the umask): the database file is
    made 0600 before SQLite opens it, and SQLite gives its -wal/-shm the database's mode."""
    from sessionward.app import create_app

    old = os.umask(0o022)
    try:
        app = create_app(tmp_path / "lib-instance")
        with app.app_context():
            from sessionward.flask import state

            state().users.create("erin", PASSWORD)
    finally:
        os.umask(old)
    db = tmp_path / "lib-instance" / "sessionward.db"
    files = [f for f in (db, db.with_name("sessionward.db-wal"), db.with_name("sessionward.db-shm")) if f.exists()]
    assert db in files and len(files) >= 2, files
    assert {oct(stat.S_IMODE(f.stat().st_mode)) for f in files} == {"0o600"}
