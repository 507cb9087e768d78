"""How `sessionward serve --asgi` serves, tested with a stand-in ASGI app (`standin_asgi.py`) so the plumbing is
checked on its own: TLS, one listening socket per uvicorn worker (reuse_port) with keep-alive connections
spread, the app's lifespan once per worker at start and at a graceful stop (also with idle keep-alive clients), an
in-flight request finished during that stop, and a failed lifespan start-up stopping the server instead of
serving."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from serverproc import free_port
from test_server_workers import CONNECTIONS, _socket_inodes, _tcp_sockets, wait_listening

pytestmark = pytest.mark.server

SCRIPT = Path(__file__).with_name("standin_asgi.py")


class Standin:
    def __init__(self, instance: Path, *, workers: int = 2, fail_startup: bool = False) -> None:
        instance.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.instance, self.port = instance, free_port()
        args = [sys.executable, str(SCRIPT), str(instance), str(self.port), str(workers)]
        self.proc = subprocess.Popen(args + (["--fail-startup"] if fail_startup else []), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     start_new_session=True)

    @property
    def verify(self) -> str:
        return str(self.instance / "tls-cert.pem")

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.port}{path}"

    def wait_up(self, timeout: float = 45) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.output()
            try:
                if requests.get(self.url("/healthz"), verify=self.verify, timeout=2).status_code == 200:
                    return
            except (requests.RequestException, OSError):
                pass
            time.sleep(0.1)
        raise AssertionError(f"the stand-in did not come up:\n{self.output()}")

    def workers(self) -> list[int]:
        out = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue
                fields = stat[stat.rindex(")") + 2 :].split()
                if int(fields[1]) == self.proc.pid:
                    out.append(int(entry.name))
        return sorted(out)

    def lifespan(self) -> list[str]:
        log = self.instance / "lifespan.log"
        return log.read_text().splitlines() if log.exists() else []

    def stop(self, timeout: float = 15) -> int:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        return self.proc.returncode

    def output(self) -> str:
        if self.proc.poll() is None:
            return "(still running)"
        return self.proc.stdout.read() if self.proc.stdout else ""


@pytest.fixture(scope="module")
def standin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Standin]:
    server = Standin(tmp_path_factory.mktemp("standin"))
    try:
        server.wait_up()
        yield server
    finally:
        server.stop()


def test_served_over_tls_only(standin: Standin) -> None:
    r = requests.get(standin.url("/pid"), verify=standin.verify, timeout=10)
    assert r.status_code == 200 and r.json()["scheme"] == "https"
    assert "server" not in {k.lower() for k in r.headers}  # no banner, as configured
    with pytest.raises(requests.ConnectionError):  # plain HTTP on the TLS port is not answered
        requests.get(f"http://127.0.0.1:{standin.port}/pid", timeout=5)


def test_each_uvicorn_worker_listens_on_its_own_socket_and_connections_spread(standin: Standin) -> None:
    workers = wait_listening(standin.port, standin.workers, 2)  # not only the first worker up
    sessions = [requests.Session() for _ in range(CONNECTIONS)]
    pids = set()
    try:
        for s in sessions:
            s.trust_env = False
            s.verify = standin.verify
            pids.add(s.get(standin.url("/pid"), timeout=10).json()["pid"])
        tcp = _tcp_sockets(standin.port)
        listeners = {pid: {i for i in _socket_inodes(pid) if tcp.get(i) == "0A"} for pid in workers}
        established = {pid: sum(1 for i in _socket_inodes(pid) if tcp.get(i) == "01") for pid in workers}
    finally:
        for s in sessions:
            s.close()
    assert all(len(v) == 1 for v in listeners.values()), listeners
    assert len(set().union(*listeners.values())) == 2, listeners
    assert all(n > 0 for n in established.values()), f"connections per worker: {established}"
    assert pids == set(workers)


def test_lifespan_runs_in_every_worker(standin: Standin) -> None:
    workers = wait_listening(standin.port, standin.workers, 2)
    deadline = time.monotonic() + 30  # a worker listens before its lifespan start-up has run
    while True:
        started = {int(line.split()[1]) for line in standin.lifespan() if line.startswith("startup")}
        if set(workers) <= started or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert set(workers) <= started


def test_graceful_stop_finishes_the_request_in_flight_and_runs_the_lifespan_shutdown(tmp_path: Path) -> None:
    server = Standin(tmp_path / "graceful", workers=1)
    try:
        server.wait_up()
        [worker] = server.workers()
        result: dict[str, object] = {}

        def slow() -> None:
            try:
                r = requests.get(server.url("/slow?ms=1500"), verify=server.verify, timeout=20)
                result["status"] = r.status_code
            except requests.RequestException as exc:
                result["error"] = exc

        thread = threading.Thread(target=slow)
        thread.start()
        deadline = time.monotonic() + 10
        while not _has_established(server.port, worker) and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.2)  # the request is read and sleeping in the app
        assert server.stop() == 0
        thread.join(20)
        assert result == {"status": 200}
        assert f"shutdown {worker}" in server.lifespan()
    finally:
        server.stop()


def test_a_stop_with_idle_keepalive_clients_still_closes_the_stores(tmp_path: Path) -> None:
    """An idle TLS keep-alive client never answers a polite close: the worker drops such connections at once,
    so its lifespan shutdown (closing the stores) runs before gunicorn's graceful timeout kills it."""
    server = Standin(tmp_path / "idle", workers=1)
    sessions = [requests.Session() for _ in range(4)]
    try:
        server.wait_up()
        [worker] = server.workers()
        for s in sessions:
            s.trust_env = False
            assert s.get(server.url("/pid"), verify=server.verify, timeout=10).status_code == 200  # kept alive
        assert server.stop() == 0
        output = server.output()
        assert f"shutdown {worker}" in server.lifespan(), output
        # nobody was waited for until the graceful timeout ran out: the idle connections went at once
        assert "timeout graceful shutdown exceeded" not in output and "Waiting for connections" not in output, output
    finally:
        for s in sessions:
            s.close()
        server.stop()


def _has_established(port: int, pid: int) -> bool:
    tcp = _tcp_sockets(port)
    return any(tcp.get(i) == "01" for i in _socket_inodes(pid))


def test_a_failed_lifespan_startup_stops_the_server(tmp_path: Path) -> None:
    server = Standin(tmp_path / "failing", workers=1, fail_startup=True)
    try:
        code = server.proc.wait(60)
    finally:
        server.stop()
    output = server.output()
    assert code != 0, output
    assert "store unreachable" in output
    with pytest.raises(requests.ConnectionError):
        requests.get(server.url("/healthz"), verify=server.verify, timeout=5)
