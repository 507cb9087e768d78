"""O3: two real `sessionward serve` processes on two ports sharing one PostgreSQL (users, signing keys) and one
Redis (sessions, families, denylist, throttling) see each other's logins, logouts and revocations at once.
Also: the same service runs unchanged on SQLite alone, on PostgreSQL alone, and on PostgreSQL + Redis.

Each instance gets the same environment (README "Deployment") and its own instance folder. Every cross-instance
check sends exactly one cookie or token to exactly one instance, so the answer is that instance's decision."""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from cluster import (
    SHARED_SECRETS,
    add_users,
    claimed_redis_db,
    cluster_env,
    dashboard_status,
    logged_in_session,
    page_csrf,
    post_form,
    private_database,
    session_cookie,
    start_instances,
)
from serverproc import ServerProcess, login, new_http_session

pytestmark = [pytest.mark.server, pytest.mark.redis, pytest.mark.postgres]

REDIS_DB = 11  # this module's own Redis database number (preferred; see cluster.claimed_redis_db)


def new_password() -> str:
    return "multi-" + secrets.token_urlsafe(12)


@pytest.fixture(scope="module")
def shared_redis(redis_url: str, flavour: str) -> Iterator[str]:  # one deployment per flavour
    with claimed_redis_db(redis_url, REDIS_DB) as url:
        yield url


@pytest.fixture(scope="module")
def shared_pg(postgres_url: str, flavour: str) -> Iterator[str]:
    """One database per flavour: the first instance of each (wsgi, asgi) pair creates its admin."""
    with private_database(postgres_url) as url:
        yield url


@pytest.fixture(scope="module")
def pair(start_server: Callable[..., ServerProcess], shared_pg: str, shared_redis: str) -> list[ServerProcess]:
    """Instances A and B: the same PostgreSQL, Redis and keys; separate instance folders and ports."""
    a, b = start_instances(start_server, cluster_env(database_url=shared_pg, store_url=shared_redis))
    assert a.port != b.port and a.instance != b.instance
    assert a.admin_password, "the first instance creates the admin"
    assert b.admin_password is None, "the second instance found the admin in the shared database"
    return [a, b]


@pytest.fixture
def user(pair: list[ServerProcess], shared_pg: str) -> tuple[str, str]:
    """A fresh user in the shared database (so no test's throttling touches another's)."""
    name, password = "u" + secrets.token_hex(5), new_password()
    add_users(shared_pg, {name: password})
    return name, password


@pytest.fixture
def cli_user(pair: list[ServerProcess]) -> tuple[str, str]:
    """A fresh user added through `sessionward users add` on instance A."""
    name, password = "c" + secrets.token_hex(5), new_password()
    pair[0].add_user(name, password)
    return name, password


# -- cookie sessions ---------------------------------------------------------------------------

def test_user_added_on_one_host_logs_in_on_the_other(pair: list[ServerProcess], cli_user: tuple[str, str]) -> None:
    a, b = pair
    user = cli_user
    http = logged_in_session(b, *user)  # added through A's CLI, logged in on B
    assert dashboard_status(b, session_cookie(http)) == 200
    listed = a.cli("users", "list")  # and B's CLI sees A's admin
    assert listed.returncode == 0 and "admin" in listed.stdout and user[0] in listed.stdout
    listed_b = b.cli("users", "list")
    assert listed_b.returncode == 0 and listed_b.stdout == listed.stdout


def test_login_on_a_cookie_works_on_b(pair: list[ServerProcess], user: tuple[str, str]) -> None:
    a, b = pair
    cookie = session_cookie(logged_in_session(a, *user))
    assert dashboard_status(b, cookie) == 200
    assert dashboard_status(a, cookie) == 200
    page = requests.get(b.url("/dashboard"), headers={"Cookie": f"__Host-session={cookie}"}, verify=b.verify,
                        timeout=10, allow_redirects=False)
    assert f'<span id="username">{user[0]}</span>' in page.text


def test_logout_on_b_is_refused_on_a_at_once(pair: list[ServerProcess], user: tuple[str, str]) -> None:
    a, b = pair
    cookie = session_cookie(logged_in_session(a, *user))
    assert dashboard_status(a, cookie) == 200
    r = post_form(b, "/logout", cookie, {"csrf_token": page_csrf(b, cookie)})
    assert r.status_code == 303 and r.headers["Location"] == "/login"
    # no waiting, no retry: the very next request to A is refused
    assert dashboard_status(a, cookie) == 303
    assert dashboard_status(b, cookie) == 303


def test_csrf_token_from_one_host_is_accepted_by_the_other(pair: list[ServerProcess], user: tuple[str, str]) -> None:
    """The CSRF key is shared: a page served by A and submitted to B works (a round-robin balancer)."""
    a, b = pair
    cookie = session_cookie(logged_in_session(a, *user))
    bad = post_form(b, "/logout", cookie, {"csrf_token": "x" * 43})
    assert bad.status_code == 403 and dashboard_status(a, cookie) == 200
    r = post_form(b, "/logout", cookie, {"csrf_token": page_csrf(a, cookie)})
    assert r.status_code == 303
    assert dashboard_status(a, cookie) == 303


def test_sessions_page_lists_logins_from_both_hosts_and_ends_one_everywhere(
    pair: list[ServerProcess], user: tuple[str, str]
) -> None:
    a, b = pair
    on_a = session_cookie(logged_in_session(a, *user))
    on_b = session_cookie(logged_in_session(b, *user))
    page = requests.get(a.url("/sessions"), headers={"Cookie": f"__Host-session={on_a}"}, verify=a.verify,
                        timeout=10, allow_redirects=False)
    assert page.status_code == 200
    assert len(re.findall(r'action="/sessions/[^"/]+/end"', page.text)) == 2, "both sessions are listed on A"
    # A ends all other sessions (the login is recent): B's session stops working on B at once
    r = post_form(a, "/sessions/end-others", on_a, {"csrf_token": page_csrf(a, on_a)})
    assert r.status_code == 303 and r.headers["Location"] == "/sessions?done=others"
    assert dashboard_status(b, on_b) == 303
    assert dashboard_status(a, on_b) == 303
    assert dashboard_status(b, on_a) == 200


def test_cli_revoke_and_disable_on_one_host_end_sessions_on_both(pair: list[ServerProcess],
                                                                 user: tuple[str, str]) -> None:
    a, b = pair
    name, password = user
    first = session_cookie(logged_in_session(a, name, password))
    second = session_cookie(logged_in_session(b, name, password))
    r = b.cli("sessions", "revoke", "--user", name)
    assert r.returncode == 0, r.stderr
    for server in (a, b):
        assert dashboard_status(server, first) == 303
        assert dashboard_status(server, second) == 303
    third = session_cookie(logged_in_session(b, name, password))
    r = a.cli("users", "disable", name)
    assert r.returncode == 0, r.stderr
    assert dashboard_status(a, third) == 303 and dashboard_status(b, third) == 303
    http = new_http_session(a)
    assert login(http, a, name, password).status_code == 401


def test_password_change_on_a_ends_sessions_on_b(pair: list[ServerProcess], user: tuple[str, str]) -> None:  # C6
    a, b = pair
    name, password = user
    on_a = session_cookie(logged_in_session(a, name, password))
    on_b = session_cookie(logged_in_session(b, name, password))
    new = new_password()
    r = post_form(a, "/password", on_a, {
        "csrf_token": page_csrf(a, on_a, "/password"),
        "current_password": password, "new_password": new, "confirm_password": new,
    })
    assert r.status_code == 303, (r.status_code, r.text[:300])
    assert dashboard_status(b, on_b) == 303
    assert dashboard_status(a, on_a) == 303  # A's browser got a brand-new session instead
    http = new_http_session(b)
    assert login(http, b, name, password).status_code == 401
    assert login(http, b, name, new).status_code == 303


def test_throttling_is_shared_between_hosts(pair: list[ServerProcess], user: tuple[str, str]) -> None:  # A3
    """Failures spread over both hosts count against one account: a balancer does not double the budget."""
    a, b = pair
    name, _ = user
    statuses = []
    for i in range(12):
        server = (a, b)[i % 2]
        statuses.append(login(new_http_session(server), server, name, "wrong-password-123").status_code)
        if statuses[-1] == 429:
            break
    assert set(statuses) <= {401, 429}, statuses
    assert statuses[-1] == 429, f"never throttled across both hosts: {statuses}"
    assert statuses.count(401) <= 7, statuses  # 5 free + the first counted backoff, not twice that


# -- tokens ------------------------------------------------------------------------------------

def _api(server: ServerProcess, method: str, path: str, *, json: Any = None, token: str | None = None
         ) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with requests.Session() as s:
        s.trust_env = False
        return s.request(method, server.url(path), json=json, headers=headers, verify=server.verify, timeout=10,
                         allow_redirects=False)


def api_login(server: ServerProcess, name: str, password: str) -> dict[str, Any]:
    r = _api(server, "POST", "/api/login", json={"username": name, "password": password})
    assert r.status_code == 200, (r.status_code, r.text[:300])
    return r.json()  # type: ignore[no-any-return]


def profile_status(server: ServerProcess, access_token: str) -> int:
    r = _api(server, "GET", "/api/profile", token=access_token)
    if r.status_code == 401:
        assert r.headers["WWW-Authenticate"].startswith("Bearer"), r.headers
    return r.status_code


def refresh(server: ServerProcess, refresh_token: str) -> requests.Response:
    return _api(server, "POST", "/api/refresh", json={"refresh_token": refresh_token})


def kid_of(access_token: str) -> str:
    import jwt

    return str(jwt.get_unverified_header(access_token)["kid"])


def jwks_kids(server: ServerProcess) -> set[str]:
    r = _api(server, "GET", "/.well-known/jwks.json")
    assert r.status_code == 200, r.status_code
    return {k["kid"] for k in r.json()["keys"]}


def test_tokens_from_a_work_on_b(pair: list[ServerProcess], user: tuple[str, str]) -> None:
    a, b = pair
    tokens = api_login(a, *user)
    r = _api(b, "GET", "/api/profile", token=tokens["access_token"])
    assert r.status_code == 200 and r.json() == {"logged_in_as": user[0]}
    new = refresh(b, tokens["refresh_token"])  # refreshed on B with A's refresh token
    assert new.status_code == 200, new.text[:300]
    assert profile_status(a, new.json()["access_token"]) == 200
    assert refresh(a, new.json()["refresh_token"]).status_code == 200


def test_token_logout_on_b_is_refused_on_a_at_once(pair: list[ServerProcess], user: tuple[str, str]) -> None:  # T9
    a, b = pair
    tokens = api_login(a, *user)
    assert profile_status(a, tokens["access_token"]) == 200  # A has verified (and cached) this token
    r = _api(b, "POST", "/api/logout", json={"refresh_token": tokens["refresh_token"]}, token=tokens["access_token"])
    assert r.status_code == 204, (r.status_code, r.text[:300])
    assert profile_status(a, tokens["access_token"]) == 401
    assert profile_status(b, tokens["access_token"]) == 401
    assert refresh(a, tokens["refresh_token"]).status_code == 401


def test_logout_all_on_a_ends_tokens_and_cookie_sessions_on_b(pair: list[ServerProcess], user: tuple[str, str]) -> None:
    a, b = pair
    on_b = api_login(b, *user)
    cookie = session_cookie(logged_in_session(b, *user))
    mine = api_login(a, *user)
    assert _api(a, "POST", "/api/logout-all", token=mine["access_token"]).status_code == 204
    assert profile_status(b, on_b["access_token"]) == 401
    assert refresh(b, on_b["refresh_token"]).status_code == 401
    assert dashboard_status(b, cookie) == 303


def test_refresh_reuse_is_detected_across_instances(pair: list[ServerProcess], user: tuple[str, str]) -> None:  # T8
    a, b = pair
    first = api_login(a, *user)
    second = refresh(b, first["refresh_token"])  # R1 spent on B
    assert second.status_code == 200
    replay = refresh(a, first["refresh_token"])  # R1 again, on A: reuse
    assert replay.status_code == 401, replay.text[:300]
    assert replay.json()["error"]["code"]
    # the whole family is gone, on both hosts: R2 (never used) is dead too
    assert refresh(b, second.json()["refresh_token"]).status_code == 401
    assert refresh(a, second.json()["refresh_token"]).status_code == 401


def test_refresh_race_across_instances_has_exactly_one_winner(pair: list[ServerProcess], user: tuple[str, str]) -> None:
    """The same refresh token sent to A and B at the same moment, ten times: one 200 and one 401 each time
    (the loser counts as reuse, so the family ends: RFC 9700 4.14.2)."""
    a, b = pair
    for _ in range(10):
        token = api_login(a, *user)["refresh_token"]
        barrier = threading.Barrier(2, timeout=10)
        results: dict[str, requests.Response | BaseException] = {}

        def go(server: ServerProcess, key: str, token: str, barrier: threading.Barrier,
               results: dict[str, requests.Response | BaseException]) -> None:
            try:
                with requests.Session() as s:
                    s.trust_env = False
                    prepared = s.prepare_request(requests.Request(
                        "POST", server.url("/api/refresh"), json={"refresh_token": token}))
                    s.get(server.url("/healthz"), verify=server.verify, timeout=10)  # connection open already
                    barrier.wait()
                    results[key] = s.send(prepared, verify=server.verify, timeout=10, allow_redirects=False)
            except BaseException as exc:  # reported below
                results[key] = exc

        threads = [threading.Thread(target=go, args=(srv, key, token, barrier, results))
                   for srv, key in ((a, "a"), (b, "b"))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=20)
        statuses = sorted(r.status_code if isinstance(r, requests.Response) else repr(r) for r in results.values())
        assert statuses == [200, 401], statuses


def test_key_rotation_on_one_host_is_honoured_by_all_within_seconds(
    pair: list[ServerProcess], user: tuple[str, str]
) -> None:  # T11
    a, b = pair
    old = api_login(a, *user)
    old_kid = kid_of(old["access_token"])
    assert old_kid in jwks_kids(a) and jwks_kids(a) == jwks_kids(b)
    r = b.cli("keys", "rotate")
    assert r.returncode == 0, r.stderr
    t0 = time.monotonic()

    def cross_check() -> set[str]:
        """Tokens made by either host verify on both; returns the kids they carry."""
        kids = set()
        for maker, other in ((a, b), (b, a)):
            made = api_login(maker, *user)["access_token"]
            assert profile_status(other, made) == 200 and profile_status(maker, made) == 200
            kids.add(kid_of(made))
        return kids

    published = False
    while True:  # published everywhere before it signs anywhere; then both sign with it
        kids_a, kids_b = jwks_kids(a), jwks_kids(b)
        kids = cross_check()
        new = (kids_a | kids_b) - {old_kid}
        if kids - {old_kid}:
            assert published or (kids - {old_kid}) <= (kids_a & kids_b), "a key signed before all had it"
        if new and new <= kids_a and new <= kids_b:
            published = True
        if kids == new and len(new) == 1:
            break
        assert time.monotonic() - t0 < 30, f"rotation not honoured by both within 30 s: {kids_a} {kids_b} {kids}"
        time.sleep(0.5)
    # nobody was logged out: the token signed with the old key still works on both hosts
    assert profile_status(a, old["access_token"]) == 200 and profile_status(b, old["access_token"]) == 200
    assert refresh(b, old["refresh_token"]).status_code == 200


def test_T14_revoked_key_is_refused_at_once_on_both_hosts(pair: list[ServerProcess], user: tuple[str, str]) -> None:
    """The operator's path: `keys revoke` of the key that signs now is refused; after `keys rotate` and the new
    key signing everywhere, a token of the old key, verified (and cached) by both hosts a moment ago, is refused
    by both on the very next request, its family refreshes under the new key, the key leaves both JWKS within
    the key refresh interval and `keys list` shows it revoked. (That the refusal does not come from a re-read
    of the key set is shown by the next test, whose hosts re-read only every 60 s.)"""
    a, b = pair
    old = api_login(a, *user)
    old_kid = kid_of(old["access_token"])
    r = b.cli("keys", "revoke", positional=[old_kid])  # the key that signs now: refused, nothing changes
    assert r.returncode == 1 and "keys rotate" in r.stderr, (r.returncode, r.stderr)
    assert profile_status(a, old["access_token"]) == 200 and profile_status(b, old["access_token"]) == 200
    assert b.cli("keys", "rotate").returncode == 0
    t0 = time.monotonic()
    while {kid_of(api_login(server, *user)["access_token"]) for server in (a, b)} & {old_kid}:
        assert time.monotonic() - t0 < 30, "the new key did not start signing on both hosts within 30 s"
        time.sleep(0.5)
    assert profile_status(a, old["access_token"]) == 200 and profile_status(b, old["access_token"]) == 200

    r = a.cli("keys", "revoke", positional=[old_kid])
    assert r.returncode == 0, r.stderr
    assert f"revoked signing key {old_kid}" in r.stdout
    assert re.search(r"^[1-9][0-9]* live token famil", r.stdout, re.M), r.stdout  # at least this test's family
    # no waiting, no retry: both hosts refuse the key's token on the very next request
    assert profile_status(b, old["access_token"]) == 401
    assert profile_status(a, old["access_token"]) == 401
    new = refresh(b, old["refresh_token"])  # the family lives on under the new key
    assert new.status_code == 200 and kid_of(new.json()["access_token"]) != old_kid
    assert profile_status(a, new.json()["access_token"]) == 200
    t0 = time.monotonic()
    while old_kid in jwks_kids(a) | jwks_kids(b):
        assert time.monotonic() - t0 < 30, "the revoked key stayed in a JWKS for more than 30 s"
        time.sleep(0.5)
    listing = b.cli("keys", "list").stdout
    assert re.search(rf"^{re.escape(old_kid)} +\S+ +revoked ", listing, re.M), listing


def test_T14_revoke_is_refused_at_once_by_hosts_that_have_not_reread_their_keys(
    start_server: Callable[..., ServerProcess], postgres_url: str, shared_redis: str
) -> None:
    """Two hosts that re-read the key set only every 60 s: a token of the revoked key is refused by both on the
    next request, while both still hold the key, so the refusal comes from the revocation alone."""
    import jwt

    from sessionward.db import make_engine
    from sessionward.tokens import SQLKeyRepository

    with private_database(postgres_url) as url:
        repo = SQLKeyRepository(make_engine(url), bytes.fromhex(SHARED_SECRETS["SESSIONWARD_KEK"]))
        now = time.time()
        old_key = repo.load(now=now).signing_key(now)
        repo.rotate(now=now, activate_after=0)  # before any host starts: both read both keys at start-up
        env = cluster_env(database_url=url, store_url=shared_redis, extra={
            "SESSIONWARD_KEYS_REFRESH_INTERVAL": "60", "SESSIONWARD_REDIS_PREFIX": f"t14{secrets.token_hex(3)}:"})
        a, b = start_instances(start_server, env)
        try:
            name, password = "k" + secrets.token_hex(5), new_password()
            add_users(url, {name: password})
            tokens = api_login(a, name, password)
            assert kid_of(tokens["access_token"]) != old_key.kid
            # the same claims signed with the superseded key: what its holder could make; both hosts verify it
            claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
            old_token = jwt.encode(claims, old_key.private, algorithm=old_key.alg,
                                   headers={"kid": old_key.kid, "typ": "at+jwt"})
            assert profile_status(a, old_token) == 200 and profile_status(b, old_token) == 200
            r = b.cli("keys", "revoke", positional=[old_key.kid])
            assert r.returncode == 0, r.stderr
            assert profile_status(a, old_token) == 401 and profile_status(b, old_token) == 401
            assert old_key.kid in jwks_kids(a) and old_key.kid in jwks_kids(b)  # neither has re-read its keys
            assert profile_status(a, tokens["access_token"]) == 200  # the current key is untouched
            assert profile_status(b, tokens["access_token"]) == 200
        finally:
            a.stop()
            b.stop()


# -- the same service on SQLite alone, PostgreSQL alone, PostgreSQL + Redis --------------------

def _full_round(servers: list[ServerProcess]) -> None:
    """Add a user, log in on the first, use the session on every server, log out on the last."""
    first, last = servers[0], servers[-1]
    name, password = "r" + secrets.token_hex(5), new_password()
    first.add_user(name, password)
    cookie = session_cookie(logged_in_session(first, name, password))
    for server in servers:
        assert dashboard_status(server, cookie) == 200, server.base_url
    r = post_form(last, "/logout", cookie, {"csrf_token": page_csrf(last, cookie)})
    assert r.status_code == 303
    for server in servers:
        assert dashboard_status(server, cookie) == 303, server.base_url
        assert requests.get(server.url("/healthz"), verify=server.verify, timeout=10).json()["status"] == "ok"


@pytest.mark.parametrize("backend", ["sqlite", "postgres", "postgres+redis x2"])
def test_same_service_on_every_backend(
    backend: str, start_server: Callable[..., ServerProcess], postgres_url: str, pair: list[ServerProcess]
) -> None:
    if backend == "sqlite":
        servers = [start_server(env=cluster_env())]  # nothing but the instance folder
        db = servers[0].instance / "sessionward.db"
        assert db.is_file(), "SQLite in the instance folder is the default"
        _full_round(servers)
        servers[0].stop()
    elif backend == "postgres":
        with private_database(postgres_url) as url:
            server = start_server(env=cluster_env(database_url=url))  # users and sessions in PostgreSQL
            assert not (server.instance / "sessionward.db").exists()
            _full_round([server])
            server.stop()
    else:
        _full_round(pair)
        for server in pair:
            assert not (server.instance / "sessionward.db").exists()
