"""A6: a burst of concurrent wrong logins against real `sessionward serve` processes checks no more passwords
than the throttle's allowance: on one instance on SQLite, and on two instances sharing PostgreSQL (users) and
Redis (counters), with more requests in flight than the servers have threads (gthread, 4 per worker).

"Checked" means the password was verified (answer 401); "refused" means 429 with Retry-After, no check, or 503
`overloaded` with Retry-After: the per-process hashing gate (O7) turned the request away before any check. The
ASGI service takes the whole burst at once (no thread cap as gthread's 4 per worker), so its gate does. Every
client connects (TLS handshake, keep-alive) before the burst starts, and all of them send at once, so the
requests are in the servers together. Before A6 the throttle was read before the ~100 ms verification and
written after it, so every request already in flight was checked."""

from __future__ import annotations

import collections
import secrets
import threading
from collections.abc import Callable, Iterator

import pytest
from cluster import add_users, claimed_redis_db, client_session, cluster_env, private_database, start_instances
from serverproc import ServerProcess

pytestmark = [pytest.mark.server]

ACCOUNT_FREE, ADDRESS_FREE = 5, 20  # ThrottlePolicy's defaults: the service runs with them
REFUSED = (429, 503)  # throttled; or overloaded (the hashing gate): neither checked a password
REDIS_DB = 13  # this module's own Redis database number (preferred; see cluster.claimed_redis_db)
#: The first backoff outlasts any burst: with the default 2 s, a burst that takes longer than that on a loaded
#: machine may rightly check one more password after the backoff ran out, which is not what is tested here.
LONG_BACKOFF = {"SESSIONWARD_THROTTLE_BASE_BACKOFF": "600"}


def burst(servers: list[ServerProcess], bodies: list[dict[str, str]], source: str) -> collections.Counter[int]:
    """POST every body to /api/login at once from `source`, spread over `servers`; count the statuses."""
    sessions = [client_session(servers[i % len(servers)], source, pool=1) for i in range(len(bodies))]
    for i, http in enumerate(sessions):  # connect first: the burst is requests, not handshakes
        assert http.get(servers[i % len(servers)].url("/healthz"), timeout=30).status_code == 200
    start = threading.Barrier(len(bodies), timeout=60)
    statuses: list[int] = [0] * len(bodies)
    problems: list[str] = []

    def one(i: int) -> None:
        try:
            start.wait()
            r = sessions[i].post(servers[i % len(servers)].url("/api/login"), json=bodies[i], timeout=60)
            statuses[i] = r.status_code
            if r.status_code in REFUSED and not r.headers.get("Retry-After", "").isdigit():
                problems.append(f"{r.status_code} without Retry-After")
            if r.status_code == 503 and r.json()["error"]["code"] != "overloaded":
                problems.append(f"503 that is not the hashing gate's: {r.text[:200]}")
        except Exception as exc:  # a connection error or timeout fails the test below
            problems.append(repr(exc)[:300])

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    for http in sessions:
        http.close()
    assert not problems, problems[:5]
    return collections.Counter(statuses)


def fresh_address() -> str:
    """A loopback address no other test (or the other server flavour) has counted failures for: the counters
    outlive a test (same Redis database, long backoff)."""
    return f"127.{secrets.randbelow(250) + 1}.{secrets.randbelow(250) + 1}.{secrets.randbelow(250) + 2}"


def wrong_logins(username: str, n: int) -> list[dict[str, str]]:
    return [{"username": username, "password": f"wrong-{secrets.token_hex(6)}"} for _ in range(n)]


def assert_allowance(statuses: collections.Counter[int], n: int, allowance: int) -> None:
    assert set(statuses) <= {401, *REFUSED} and sum(statuses.values()) == n, dict(statuses)
    assert 1 <= statuses[401] <= allowance, f"{statuses[401]} of {n} passwords checked: {dict(statuses)}"


# -- one instance on SQLite ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sqlite_server(start_server: Callable[..., ServerProcess]) -> ServerProcess:
    return start_server(env=LONG_BACKOFF, workers=2)  # 8 threads


def test_A6_concurrent_burst_on_a_fresh_account_sqlite(sqlite_server: ServerProcess) -> None:
    name = "burst" + secrets.token_hex(4)
    sqlite_server.add_user(name, "right-" + secrets.token_urlsafe(12))
    n = 24
    statuses = burst([sqlite_server], wrong_logins(name, n), fresh_address())
    # the free failures and the one attempt that starts the backoff
    assert_allowance(statuses, n, ACCOUNT_FREE + 1)


def test_A6_concurrent_burst_from_one_address_sqlite(sqlite_server: ServerProcess) -> None:
    n = ADDRESS_FREE + 12
    bodies = [{"username": f"nobody{i}-{secrets.token_hex(3)}", "password": "Summer2024!"} for i in range(n)]
    statuses = burst([sqlite_server], bodies, fresh_address())
    assert_allowance(statuses, n, ADDRESS_FREE + 1)


# -- two instances sharing PostgreSQL and Redis ----------------------------------------------------


@pytest.fixture(scope="module")
def shared(redis_url: str, postgres_url: str, flavour: str) -> Iterator[tuple[str, str]]:
    with private_database(postgres_url) as pg, claimed_redis_db(redis_url, REDIS_DB) as redis:
        yield pg, redis


@pytest.fixture(scope="module")
def pair(start_server: Callable[..., ServerProcess], shared: tuple[str, str]) -> list[ServerProcess]:
    pg, redis = shared
    # 2 x 4 threads
    return start_instances(start_server, cluster_env(database_url=pg, store_url=redis, extra=LONG_BACKOFF))


@pytest.mark.redis
@pytest.mark.postgres
def test_A6_concurrent_burst_on_a_fresh_account_two_instances_on_redis(
    pair: list[ServerProcess], shared: tuple[str, str]
) -> None:
    name = "burst" + secrets.token_hex(4)
    add_users(shared[0], {name: "right-" + secrets.token_urlsafe(12)})
    n = 24
    statuses = burst(pair, wrong_logins(name, n), fresh_address())
    assert_allowance(statuses, n, ACCOUNT_FREE + 1)


@pytest.mark.redis
@pytest.mark.postgres
def test_A6_concurrent_burst_from_one_address_two_instances_on_redis(pair: list[ServerProcess]) -> None:
    n = ADDRESS_FREE + 12
    bodies = [{"username": f"nobody{i}-{secrets.token_hex(3)}", "password": "Summer2024!"} for i in range(n)]
    statuses = burst(pair, bodies, fresh_address())
    assert_allowance(statuses, n, ADDRESS_FREE + 1)
