"""O7: password hashing is bounded per process (concurrency and memory): a login storm of unknown usernames
against the real server queues or gets 503 + Retry-After, and the worker's peak memory stays within
`SESSIONWARD_HASH_CONCURRENCY` argon2 hashes (64 MiB each with the default parameters)."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from serverproc import ServerProcess, new_http_session

pytestmark = pytest.mark.server

MIB = 1024 * 1024
ARGON2_MIB = 64  # the default memory cost (RFC 9106 low-memory profile)
CLIENTS = 16  # concurrent clients, more than the worker's 4 threads
PER_CLIENT = 3


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


@pytest.fixture(scope="module")
def storm_server(start_server: Callable[..., ServerProcess]) -> ServerProcess:
    return start_server(env={
        "SESSIONWARD_HASH_CONCURRENCY": "1",
        "SESSIONWARD_HASH_QUEUE": "1",
        "SESSIONWARD_HASH_WAIT": "2",
        # the storm comes from one address: keep the address throttle out of the way of what is measured
        "SESSIONWARD_THROTTLE_ADDRESS_FREE": "100000",
    })


def test_O7_login_storm_of_unknown_users_is_bounded_in_memory_and_refused_with_503(storm_server: ServerProcess) -> None:
    (worker,) = storm_server.worker_pids()
    rss_before = _status_kib(worker, "VmRSS")
    statuses: list[int] = []
    refusals: list[tuple[str | None, str]] = []
    lock = threading.Lock()

    def client() -> None:
        http = new_http_session(storm_server)
        for _ in range(PER_CLIENT):
            r = http.post(storm_server.url("/api/login"), timeout=60,
                          json={"username": "nobody-" + secrets.token_hex(6),
                                "password": "wrong-" + secrets.token_hex(8)})
            with lock:
                statuses.append(r.status_code)
                if r.status_code == 503:
                    refusals.append((r.headers.get("Retry-After"), r.json()["error"]["code"]))

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    peak_growth_mib = (_status_kib(worker, "VmHWM") - rss_before) / 1024

    assert len(statuses) == CLIENTS * PER_CLIENT
    assert set(statuses) <= {401, 503}, statuses  # never a 500, never a success for an unknown user
    # one argon2 hash at a time: the peak is one hash's memory plus slack, not the 4 threads' 4 x 64 MiB
    assert peak_growth_mib < ARGON2_MIB + 48, f"worker peak grew {peak_growth_mib:.0f} MiB during the storm"
    assert 401 in statuses  # hashing still happens (one at a time)
    assert refusals, "a storm past the queue must be refused"
    assert all(ra is not None and ra.isdigit() and int(ra) >= 1 and code == "overloaded" for ra, code in refusals)
    assert storm_server.running
