"""Fixtures for the audit's tests: real servers in subprocesses (the lab's two apps with Werkzeug's debug
server, sessionward's reference service via `sessionward serve`, and broken variants of it) and the real
`sessionward audit` command."""

from __future__ import annotations

import http.client
import os
import secrets
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent / "e2e"))

from serverproc import ServerProcess, free_port  # noqa: E402


@dataclass
class App:
    url: str
    proc: subprocess.Popen[str] | None = None
    password: str = ""
    cacert: str | None = None


def _wait_until_answering(url: str, proc: subprocess.Popen[str], timeout: float = 90) -> None:
    scheme, rest = url.split("://")
    host, port = rest.split(":")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            raise RuntimeError(f"{url}: server exited with {proc.returncode}:\n{out[-3000:]}")
        try:
            if scheme == "https":
                conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                    host, int(port), timeout=2, context=ssl._create_unverified_context())
            else:
                conn = http.client.HTTPConnection(host, int(port), timeout=2)
            conn.request("GET", "/")
            conn.getresponse().read()
            conn.close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f}s")


def _start(cmd: list[str], url: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}, start_new_session=True)
    try:
        _wait_until_answering(url, proc)
    except BaseException:
        _stop(proc)
        raise
    return proc


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait(timeout=5)
    if proc.stdout:
        proc.stdout.close()


@pytest.fixture(scope="module")
def session_lab() -> Iterator[App]:
    """The lab's Part 1 app (HTTPS, ad-hoc certificate, debug=True)."""
    port = free_port()
    url = f"https://127.0.0.1:{port}"
    proc = _start([sys.executable, str(HERE / "labapps" / "session_app.py"), str(port)], url)
    yield App(url, proc)
    _stop(proc)


@pytest.fixture(scope="module")
def jwt_lab() -> Iterator[App]:
    """The lab's Part 2 API (plain HTTP, debug=True, Flask-JWT-Extended)."""
    import flask_jwt_extended  # noqa: F401  (in the test extra: a missing one is an install error, not a skip)

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = _start([sys.executable, str(HERE / "labapps" / "jwt_app.py"), str(port)], url)
    yield App(url, proc, password="password123")
    _stop(proc)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    """The real `sessionward serve`."""
    proc = ServerProcess(instance=tmp_path_factory.mktemp("ref-instance"))
    proc.start()
    assert proc.admin_password
    yield App(proc.base_url, None, proc.admin_password, str(proc.certfile))
    proc.stop()


@pytest.fixture(scope="module")
def start_variant(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], App]]:
    """`start_variant(name)`: the reference service with one defence off (tests/audit/variants.py)."""
    started: list[subprocess.Popen[str]] = []  # appended from several threads (list.append is atomic)

    def start(name: str) -> App:
        instance = tmp_path_factory.mktemp(f"variant-{name}")
        port = free_port()
        url = f"https://127.0.0.1:{port}"
        password = secrets.token_urlsafe(15)
        env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONWARD_")}
        proc = subprocess.Popen(
            [sys.executable, str(HERE / "variants.py"), name, str(instance), str(port)], stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
            env={**env, "PYTHONUNBUFFERED": "1", "AUDIT_ADMIN_PASSWORD": password})
        started.append(proc)
        _wait_until_answering(url, proc)
        return App(url, proc, password, str(instance / "tls-cert.pem"))

    yield start
    for proc in started:
        _stop(proc)


@pytest.fixture(scope="module")
def mistakes() -> Iterator[App]:
    """tests/audit/labapps/mistakes_app.py: one mistake per URL prefix."""
    port = free_port()
    url = f"https://127.0.0.1:{port}"
    proc = _start([sys.executable, str(HERE / "labapps" / "mistakes_app.py"), str(port)], url)
    yield App(url, proc, password="correct horse battery staple")
    _stop(proc)
