"""`sessionward serve` spreads connections over its workers: each gunicorn worker has its own listening socket
(SO_REUSEPORT), so keep-alive connections cannot all pile up on one worker."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from serverproc import ServerError, ServerProcess, new_http_session

pytestmark = pytest.mark.server

#: Connections opened to show they spread. The kernel puts each new connection on one of the listening sockets
#: of the port by a keyed hash of its addresses and ports, so with two workers all of them land on the same one by
#: chance with probability 2 * 2**-32 (about 5e-10) per run: a failure means they do not spread.
CONNECTIONS = 32


def _socket_inodes(pid: int) -> set[int]:
    out = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            out.add(int(target[8:-1]))
    return out


def _tcp_sockets(port: int) -> dict[int, str]:
    """inode -> state ('0A' listen, '01' established) of the IPv4 sockets whose local port is `port`."""
    out = {}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port:
            out[int(fields[9])] = fields[3]
    return out


def wait_listening(port: int, worker_pids: Callable[[], list[int]], expected: int, timeout: float = 30) -> list[int]:
    """The workers, once `expected` of them each listen on a socket of their own on `port`. gunicorn forks its
    workers one after another and each binds its reuse_port socket only after its fork: the first can answer
    /healthz while the next one is not forked, or not listening, yet, and every connection opened meanwhile lands
    on the first."""
    deadline = time.monotonic() + timeout
    while True:
        workers = worker_pids()
        tcp = _tcp_sockets(port)
        listening = {pid: sum(1 for i in _socket_inodes(pid) if tcp.get(i) == "0A") for pid in workers}
        if len(workers) == expected and all(n >= 1 for n in listening.values()):
            return workers
        if time.monotonic() > deadline:
            raise AssertionError(f"not every worker listens after {timeout:.0f}s: {listening}")
        time.sleep(0.02)


@pytest.fixture(scope="module")
def two_workers(start_server: Callable[..., ServerProcess]) -> ServerProcess:
    return start_server(workers=2)


def test_each_worker_listens_on_its_own_socket_and_keepalive_connections_spread(two_workers: ServerProcess) -> None:
    workers = wait_listening(two_workers.port, two_workers.worker_pids, 2)
    sessions = [new_http_session(two_workers) for _ in range(CONNECTIONS)]
    try:
        for s in sessions:  # one request each; the connection stays open (keep-alive)
            assert s.get(two_workers.url("/healthz"), timeout=10).status_code == 200
        tcp = _tcp_sockets(two_workers.port)
        listeners = {pid: {i for i in _socket_inodes(pid) if tcp.get(i) == "0A"} for pid in workers}
        established = {pid: sum(1 for i in _socket_inodes(pid) if tcp.get(i) == "01") for pid in workers}
    finally:
        for s in sessions:
            s.close()
    # one listening socket per worker, not one shared by all (the shared one lets a worker take every connection)
    assert all(len(v) == 1 for v in listeners.values()), listeners
    assert len(set().union(*listeners.values())) == 2, listeners
    assert sum(established.values()) >= CONNECTIONS, established  # (plus any the test harness holds)
    assert all(n > 0 for n in established.values()), f"connections per worker: {established}"


def test_serve_refuses_a_port_another_server_listens_on(tmp_path: Path) -> None:
    """The workers bind with SO_REUSEPORT, which Linux lets any later listener of the same user share: a second
    `serve` on a taken port would silently take half of the first one's connections (another instance, another
    certificate). It must stop with a clear error instead, and leave the first one alone."""
    first = ServerProcess(instance=tmp_path / "first").start()
    try:
        second = ServerProcess(instance=tmp_path / "second", port=first.port)
        with pytest.raises(ServerError):
            second.start(timeout=30)
        assert any(f"cannot serve on 127.0.0.1:{first.port}" in line for line in second.output), second.output[-5:]
        assert first.running
        for _ in range(8):  # new connections still reach the first server, with its own certificate
            with new_http_session(first) as session:
                assert session.get(first.url("/healthz"), timeout=5).status_code == 200
    finally:
        first.stop()


def test_serve_refuses_a_port_another_serve_is_starting_on(tmp_path: Path) -> None:
    """Two servers started at the same instant would both pass the probe (nothing listens yet) and then share the
    port. Each first takes the port's lock (`sessionward.portlock`); here the test holds it, as a `serve` that
    passed its probe and is binding would: this one waits, then refuses with a clear error."""
    from serverproc import free_port

    from sessionward import portlock

    port = free_port()
    assert portlock.hold_port(port, wait=0)
    second = ServerProcess(instance=tmp_path / "second", port=port)
    try:
        with pytest.raises(ServerError):
            second.start(timeout=30)
        refused = f"another sessionward server holds port {port}"
        assert any(refused in line for line in second.output), second.output[-5:]
    finally:
        if second.running:  # only when the defence failed: never leave a server behind
            second.stop()
        portlock.release_port(port)
