"""A bounded load test (about 3 s, loopback only) against one real `sessionward serve` (2 gthread workers) on
PostgreSQL + Redis: many concurrent HTTPS clients reading the dashboard with their sessions while others fail
logins on one account from known client addresses (127.0.0.10-13, bound as source addresses).

What must hold: no 5xx and no connection error; every dashboard read answers 200; every failed login answers
401 (counted) or 429 (refused without counting, with Retry-After); and no lost update on the throttling counters
in Redis: the account counter equals the number of 401s the clients saw, each address's counter and its pair
counter equal that address's 401s, and `acctnew` equals the number of addresses that were counted at all.
(Once backoff starts, attempts are refused with 429 without counting, so 401s, not attempts, are compared.)"""

from __future__ import annotations

import collections
import hashlib
import secrets
import threading
import time
import unicodedata
from collections.abc import Callable, Iterator

import pytest
import requests
from cluster import (
    COOKIE,
    add_users,
    claimed_redis_db,
    client_session,
    cluster_env,
    logged_in_session,
    private_database,
    session_cookie,
)
from serverproc import ServerProcess, csrf_from

pytestmark = [pytest.mark.server, pytest.mark.redis, pytest.mark.postgres]

REDIS_DB = 12  # this module's own Redis database number (preferred; see cluster.claimed_redis_db)
DURATION = 3.0
READERS = 16
ATTACKERS = 8
ADDRESSES = ("127.0.0.10", "127.0.0.11", "127.0.0.12", "127.0.0.13")


@pytest.fixture(scope="module")
def store_url(redis_url: str, flavour: str) -> Iterator[str]:  # per flavour: counters from 0
    with claimed_redis_db(redis_url, REDIS_DB) as url:
        yield url


@pytest.fixture(scope="module")
def pg(postgres_url: str, flavour: str) -> Iterator[str]:
    with private_database(postgres_url) as url:
        yield url


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def _counter(client: object, key: str) -> int:
    """Failures in the throttle counter `key` (store layout: `sw:{t}:<key>` hash, field `f`)."""
    value = client.hget(f"sw:{{t}}:{key}", "f")  # type: ignore[attr-defined]
    return int(value) if value is not None else 0


def test_concurrent_clients_no_errors_no_lost_throttle_updates(
    start_server: Callable[..., ServerProcess], store_url: str, pg: str
) -> None:
    import redis

    # The module's Redis database serves both flavours (wsgi, then asgi): the per-address counters of the first
    # run would still be in their window for the second, so each run starts from none (the claim key stays).
    cleanup = redis.Redis.from_url(store_url, socket_timeout=5)
    try:
        cleanup.delete(*(f"sw:{{t}}:ip:{source}" for source in (*ADDRESSES, "127.0.0.1")))
    finally:
        cleanup.close()
    victim, reader = "Victim" + secrets.token_hex(3), "reader" + secrets.token_hex(3)
    reader_password = "load-" + secrets.token_urlsafe(12)
    add_users(pg, {victim: "load-" + secrets.token_urlsafe(12), reader: reader_password})
    server = start_server(env=cluster_env(database_url=pg, store_url=store_url), workers=2)
    # a few signed-in sessions, shared by the reader threads (each sends one explicitly)
    cookies = [session_cookie(logged_in_session(server, reader, reader_password)) for _ in range(4)]

    lock = threading.Lock()
    statuses: dict[str, collections.Counter[int]] = collections.defaultdict(collections.Counter)
    counted: collections.Counter[str] = collections.Counter()  # 401s per source address
    problems: list[str] = []
    deadline: list[float] = []
    # everyone starts together once set up; the run lasts DURATION from then
    start = threading.Barrier(READERS + ATTACKERS, action=lambda: deadline.append(time.monotonic() + DURATION),
                              timeout=30)

    def record(kind: str, r: requests.Response, source: str | None = None) -> None:
        with lock:
            statuses[kind][r.status_code] += 1
            if r.status_code == 401 and source is not None:
                counted[source] += 1
            if r.status_code >= 500:
                problems.append(f"{kind}: {r.status_code} {r.text[:200]}")
            if r.status_code == 429 and not r.headers.get("Retry-After", "").isdigit():
                problems.append(f"{kind}: 429 without Retry-After")

    def run(body: Callable[[], None]) -> None:
        try:
            start.wait()
            while time.monotonic() < deadline[0]:
                body()
        except Exception as exc:  # a connection error, a timeout, an assertion in a body
            with lock:
                problems.append(repr(exc)[:300])

    def reader_thread(i: int) -> None:
        http = client_session(server)
        header = {"Cookie": f"{COOKIE}={cookies[i % len(cookies)]}"}

        def body() -> None:
            r = http.get(server.url("/dashboard"), headers=header, timeout=15, allow_redirects=False)
            http.cookies.clear()
            record("dashboard", r)
            if r.status_code == 200 and f'<span id="username">{reader}</span>' not in r.text:
                raise AssertionError("dashboard of the wrong user")

        run(body)
        http.close()

    def attacker_thread(i: int) -> None:
        source = ADDRESSES[i % len(ADDRESSES)]
        http = client_session(server, source)
        web = i % 2 == 1  # half through the login form, half through the JSON API
        form_token = ""
        if web:
            form = http.get(server.url("/login"), timeout=15)
            assert form.status_code == 200
            form_token = csrf_from(form.text)

        def body() -> None:
            name, password = victim, "wrong-" + secrets.token_hex(6)
            if web:
                r = http.post(server.url("/login"), timeout=15, allow_redirects=False,
                              data={"username": name, "password": password, "csrf_token": form_token},
                              headers={"Origin": server.base_url})
            else:
                r = http.post(server.url("/api/login"), json={"username": name, "password": password}, timeout=15)
            record("web-login" if web else "api-login", r, source)
            if r.status_code not in (401, 429):
                raise AssertionError(f"failed login answered {r.status_code}")

        run(body)
        http.close()

    threads = [threading.Thread(target=reader_thread, args=(i,), daemon=True) for i in range(READERS)]
    threads += [threading.Thread(target=attacker_thread, args=(i,), daemon=True) for i in range(ATTACKERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=DURATION + 45)
    assert not any(t.is_alive() for t in threads), "a client thread hung"

    assert not problems, problems[:10]
    reads = statuses["dashboard"]
    assert set(reads) == {200} and reads[200] >= READERS, dict(reads)
    logins = statuses["web-login"] + statuses["api-login"]
    assert set(logins) <= {401, 429}, dict(logins)
    assert sum(statuses["web-login"].values()) > 0, "the login form path was not exercised"
    assert logins[429] > 0, "backoff never started"

    # no lost updates: the counters in Redis hold exactly what the clients were told was counted
    acct = _digest(unicodedata.normalize("NFKC", victim.casefold()))
    client = redis.Redis.from_url(store_url, socket_timeout=5)
    try:
        total = sum(counted.values())
        assert total == logins[401]
        assert _counter(client, f"acct:{acct}") == total, (dict(counted), dict(logins))
        for source in ADDRESSES:
            assert _counter(client, f"ip:{source}") == counted[source], (source, dict(counted))
            assert _counter(client, f"pair:{_digest('ip:' + source, acct)}") == counted[source], source
        assert _counter(client, f"acctnew:{acct}") == sum(1 for s in ADDRESSES if counted[s] > 0)
        # the readers' address failed nothing (their logins succeeded): no counter for it
        assert _counter(client, "ip:127.0.0.1") == 0
        # backoff started no earlier than the free allowance allows (ThrottlePolicy.account_free = 5)
        assert total >= 6, dict(counted)
        # ...and no more than sequential attempts could have been (A6: counted before the check): the account's
        # 5 free failures and the one that starts the backoff, one more as each backoff ends (2 s, then 4 s:
        # at most two even if the last requests of the run are served late), and each address's first failure
        # (a clean address is paced by `acctnew` only). Before A6 every request in flight was checked.
        assert total <= 5 + 1 + 2 + len(ADDRESSES), dict(counted)
    finally:
        client.close()
    # and the server is still healthy afterwards
    health = requests.get(server.url("/healthz"), verify=server.verify, timeout=10)
    assert health.status_code == 200, health.text
