"""Faults against real `sessionward serve` processes (O2, durability).

- A private redis-server is killed in the middle of a run of requests against two instances: no protected
  request succeeds without a valid session, none answers 500 (503 + Retry-After instead), the servers stay up;
  the redis-server is started again (empty) and both instances recover within a few seconds by themselves.
- A server restart loses no user and no durable session: SQLite alone, PostgreSQL alone, and PostgreSQL +
  Redis (where Redis outlives the app servers)."""

from __future__ import annotations

import contextlib
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
import requests
from _services import RedisServer, missing_service, start_redis_server  # type: ignore[import-not-found]
from cluster import (
    COOKIE,
    add_users,
    cluster_env,
    dashboard_status,
    logged_in_session,
    private_database,
    session_cookie,
    start_instances,
)
from serverproc import ADMIN_BANNER, ServerProcess, login, new_http_session

pytestmark = [pytest.mark.server, pytest.mark.redis, pytest.mark.postgres]


def new_password() -> str:
    return "fault-" + secrets.token_urlsafe(12)


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    try:
        server = start_redis_server()
    except RuntimeError as exc:
        missing_service(str(exc))
        raise  # unreachable
    yield server
    server.cleanup()


@pytest.fixture
def pg(postgres_url: str) -> Iterator[str]:
    with private_database(postgres_url) as url:
        yield url


def api_login(server: ServerProcess, name: str, password: str) -> dict[str, str]:
    with requests.Session() as s:
        s.trust_env = False
        r = s.post(server.url("/api/login"), json={"username": name, "password": password}, verify=server.verify,
                   timeout=10)
    assert r.status_code == 200, (r.status_code, r.text[:300])
    return r.json()  # type: ignore[no-any-return]


# -- Redis stopped mid-run ---------------------------------------------------------------------

@dataclass(frozen=True)
class Outcome:
    kind: str
    server: int
    started: float
    ended: float
    status: int | None  # None: no HTTP answer at all
    error: str = ""
    retry_after: str | None = None


def _probe(kind: str, server: ServerProcess, http: requests.Session, *, cookie: str, token: str, user: tuple[str, str]
           ) -> requests.Response:
    """One request of `kind`; each is protected except `login` (which needs the store for throttling)."""
    url = server.url
    if kind == "dashboard-valid":
        return http.get(url("/dashboard"), headers={"Cookie": f"{COOKIE}={cookie}"}, timeout=10, allow_redirects=False)
    if kind == "dashboard-forged":
        forged = secrets.token_urlsafe(24)
        return http.get(url("/dashboard"), headers={"Cookie": f"{COOKIE}={forged}"}, timeout=10, allow_redirects=False)
    if kind == "dashboard-none":
        return http.get(url("/sessions"), timeout=10, allow_redirects=False)
    if kind == "profile-valid":
        return http.get(url("/api/profile"), headers={"Authorization": f"Bearer {token}"}, timeout=10)
    if kind == "profile-forged":
        forged = token[:-8] + ("AAAAAAAA" if not token.endswith("AAAAAAAA") else "BBBBBBBB")
        return http.get(url("/api/profile"), headers={"Authorization": f"Bearer {forged}"}, timeout=10)
    if kind == "login-wrong":
        return http.post(url("/api/login"), json={"username": user[0], "password": "wrong-" + user[1]}, timeout=10)
    raise AssertionError(kind)


KINDS = ("dashboard-valid", "dashboard-forged", "dashboard-none", "profile-valid", "profile-forged", "login-wrong")


def test_redis_killed_mid_run_fails_closed_then_recovers(
    start_server: Callable[..., ServerProcess], private_redis: RedisServer, pg: str
) -> None:  # O2, O3
    name, password = "f" + secrets.token_hex(5), new_password()
    add_users(pg, {name: password})
    servers = start_instances(start_server, cluster_env(database_url=pg, store_url=private_redis.url))
    a = servers[0]
    cookie = session_cookie(logged_in_session(a, name, password))
    token = api_login(servers[1], name, password)["access_token"]
    for s in servers:
        assert dashboard_status(s, cookie) == 200

    outcomes: list[Outcome] = []
    lock = threading.Lock()
    stop = threading.Event()

    def client(index: int) -> None:
        server = servers[index % 2]
        http = new_http_session(server)
        i = index
        while not stop.is_set():
            kind = KINDS[i % len(KINDS)]
            i += 1
            t0 = time.monotonic()
            try:
                r = _probe(kind, server, http, cookie=cookie, token=token, user=(name, password))
                out = Outcome(kind, servers.index(server), t0, time.monotonic(), r.status_code,
                              retry_after=r.headers.get("Retry-After"))
                if r.status_code >= 500:
                    out = Outcome(kind, out.server, t0, out.ended, r.status_code, r.text[:200], out.retry_after)
            except requests.RequestException as exc:
                out = Outcome(kind, servers.index(server), t0, time.monotonic(), None, repr(exc)[:200])
            http.cookies.clear()  # only the Cookie header each probe sets, never what an answer set
            with lock:
                outcomes.append(out)
            time.sleep(0.01)
        http.close()

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(6)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    private_redis.stop()  # SIGKILL: connections reset, new ones refused
    killed = time.monotonic()
    time.sleep(2.5)
    restarting = time.monotonic()
    private_redis.start()  # comes back empty: every session is gone, nobody may get in with the old cookie
    up = time.monotonic()
    recovered: dict[int, float] = {}
    while len(recovered) < len(servers) and time.monotonic() - up < 10:
        for i, s in enumerate(servers):
            if i not in recovered:
                try:
                    if requests.get(s.url("/healthz"), verify=s.verify, timeout=2).status_code == 200:
                        recovered[i] = time.monotonic() - up
                except requests.RequestException:
                    pass
        time.sleep(0.1)
    time.sleep(1.0)  # the clients keep running against the recovered servers for a moment
    stop.set()
    for t in threads:
        t.join(timeout=15)
    assert not any(t.is_alive() for t in threads), "a client thread hung"

    assert len(recovered) == len(servers), f"not every instance recovered within 10 s: {recovered}"
    assert max(recovered.values()) < 5, f"recovery took too long: {recovered}"
    # nothing but well-formed answers: no 500, no dropped connection, no crashed server
    broken = [o for o in outcomes if o.status is None or (o.status >= 500 and o.status != 503)]
    assert not broken, broken[:5]
    assert all(s.running for s in servers)
    # the store was really down for a while: protected requests got 503 with Retry-After
    during = [o for o in outcomes if o.started > killed and o.ended < restarting]
    assert len(during) >= 20, f"too few requests during the outage: {len(during)}"
    assert all(o.retry_after and o.retry_after.isdigit() for o in outcomes if o.status == 503)
    for kind in ("dashboard-valid", "profile-valid", "login-wrong"):
        got = {o.status for o in during if o.kind == kind}
        assert got == {503}, (kind, got)
    # never access without a valid session: forged credentials never pass, before, during or after
    for o in outcomes:
        if o.kind in ("dashboard-forged", "dashboard-none", "profile-forged"):
            assert o.status in (303, 401, 503), o
        if o.kind == "login-wrong":
            assert o.status in (401, 429, 503), o
    # the valid cookie opened the dashboard before the kill, never after: the store that could vouch for
    # it was down, then came back without it
    valid = [o for o in outcomes if o.kind == "dashboard-valid"]
    assert any(o.status == 200 for o in valid if o.ended < killed), "no successful request before the kill"
    late = [o for o in valid if o.started > killed and o.status == 200]
    assert not late, late[:3]
    # ... and after the restart it is refused (a login redirect), asked of each instance once the run is over
    # (under load the clients may have made no dashboard request between recovery and stop)
    for s in servers:
        assert dashboard_status(s, cookie) == 303, "the old session must be gone after restart"
    # the access token is signed and checked against the denylist/epoch in Redis: no 200 while it was down
    assert not [o for o in outcomes if o.kind == "profile-valid" and o.started > killed and o.ended < restarting
                and o.status == 200]
    # full service again, on both instances: log in on one, use the session on the other
    # (from another client address: 127.0.0.1 has been failing logins on this account all along, A3)
    cookie2 = session_cookie(logged_in_session(servers[1], name, password, source="127.0.0.2"))
    assert dashboard_status(a, cookie2) == 200
    assert dashboard_status(a, cookie) == 303


# -- a server restart loses nothing durable ----------------------------------------------------

@pytest.mark.parametrize("backend", ["sqlite", "postgres", "postgres+redis"])
def test_server_restart_loses_no_user_and_no_durable_session(
    backend: str, start_server: Callable[..., ServerProcess], postgres_url: str
) -> None:
    with contextlib.ExitStack() as stack:
        if backend == "sqlite":
            env = cluster_env()
        else:
            pg = stack.enter_context(private_database(postgres_url))
            redis_url = None
            if backend == "postgres+redis":
                try:
                    redis_server = start_redis_server()
                except RuntimeError as exc:
                    missing_service(str(exc))
                    raise  # unreachable
                stack.callback(redis_server.cleanup)
                redis_url = redis_server.url
            env = cluster_env(database_url=pg, store_url=redis_url)
        server = start_server(env=env)
        stack.callback(server.stop)
        name, password = "d" + secrets.token_hex(5), new_password()
        server.add_user(name, password)
        cookie = session_cookie(logged_in_session(server, name, password))
        tokens = api_login(server, name, password)
        assert dashboard_status(server, cookie) == 200

        server.restart()

        assert server.output_text().count(ADMIN_BANNER) == 1, "the restart found the admin, made none"
        assert dashboard_status(server, cookie) == 200, "the cookie session survived the restart"
        with requests.Session() as s:
            s.trust_env = False
            r = s.get(server.url("/api/profile"), headers={"Authorization": f"Bearer {tokens['access_token']}"},
                      verify=server.verify, timeout=10)
            assert r.status_code == 200, "the signing key survived the restart"
            r = s.post(server.url("/api/refresh"), json={"refresh_token": tokens["refresh_token"]},
                       verify=server.verify, timeout=10)
            assert r.status_code == 200, "the token family survived the restart"
        listed = server.cli("users", "list")
        assert listed.returncode == 0 and name in listed.stdout and "admin" in listed.stdout
        assert login(new_http_session(server), server, name, password).status_code == 303
        server.stop()
