"""The real `sessionward serve` command as a subprocess, for end-to-end tests.

`ServerProcess` starts the server on a free port with its own instance folder, waits until `/healthz` answers
over HTTPS, captures the generated admin password from stdout, and stops the whole process group (gunicorn
master and workers) with bounded waits. It can be stopped and started again on the same port and instance
(e.g. around a store outage), and several can share one database/store through `env`:

    with ServerProcess(instance=tmp / "a", env={"SESSIONWARD_STORE_URL": redis_url}) as a:
        b = ServerProcess(instance=tmp / "b", env={...same URLs and keys...}).start()

Instances of one deployment need the same keys: pass `env={**shared_secrets_env(), ...}` to each (only the
first to see an empty user table prints an admin password). `run_cli(...)` runs the admin commands.
Small HTTP helpers (`csrf_from`, `login`) are shared by the HTTP and browser tests.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from html import unescape
from pathlib import Path

import requests

__all__ = [
    "FLAVOURS",
    "ServerError",
    "ServerProcess",
    "asgi_missing",
    "require_asgi",
    "csrf_from",
    "free_port",
    "login",
    "new_http_session",
    "run_cli",
    "sessionward_command",
    "shared_secrets_env",
]

#: how `sessionward serve` is told to serve each flavour
FLAVOURS: dict[str, tuple[str, ...]] = {"wsgi": (), "asgi": ("--asgi",), "uvicorn": ("--server", "uvicorn")}
ADMIN_BANNER = "First start: created user 'admin' with password:"
_CSRF_RE = re.compile(r'name="csrf_token"\s+value="([^"]*)"')


def shared_secrets_env() -> dict[str, str]:
    """Fresh keys for several instances of one deployment (they must agree on CSRF, refresh and KEK keys)."""
    return {f"SESSIONWARD_{name}": secrets.token_hex(32) for name in ("CSRF_KEY", "REFRESH_KEY", "KEK")}


def require_asgi() -> None:
    """Skip when the ASGI service cannot be served from this tree, with the reason; under CI fail instead (a
    missing flavour must not pass silently there, `_services.missing_service`)."""
    reason = asgi_missing()
    if reason:
        from _services import missing_service  # type: ignore[import-not-found]

        missing_service(reason)


def asgi_missing() -> str | None:
    """Why the ASGI service cannot be served from this tree, or None."""
    import importlib.util

    from sessionward.server_asgi import ASGI_FACTORY

    module = ASGI_FACTORY.partition(":")[0]
    try:
        found = importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        found = False
    return None if found else f"the ASGI service ({module}) is not in this tree"


class ServerError(RuntimeError):
    """The server did not come up (or went away); the message carries the tail of its output."""


def free_port(host: str = "127.0.0.1") -> int:
    """`_services.free_port`: a port nothing listens on and that no other test of this process was given."""
    from _services import free_port as unique_free_port  # type: ignore[import-not-found]

    port: int = unique_free_port(host)
    return port


def sessionward_command() -> list[str]:
    """The installed console script next to this interpreter, else `python -m sessionward.cli`."""
    script = Path(sys.executable).with_name("sessionward")
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    found = shutil.which("sessionward")
    return [found] if found else [sys.executable, "-m", "sessionward.cli"]


def _child_env(extra: Mapping[str, str] | None) -> dict[str, str]:
    """The parent environment without inherited service settings (tests stay hermetic), plus `extra`."""
    env = {
        k: v for k, v in os.environ.items()
        if not (k.startswith("SESSIONWARD_") and not k.startswith("SESSIONWARD_TEST_"))
    }
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def run_cli(
    *args: str,
    instance: str | os.PathLike[str],
    env: Mapping[str, str] | None = None,
    input: str | None = None,
    timeout: float = 60,
    positional: Sequence[str] = (),
) -> subprocess.CompletedProcess[str]:
    """Run `sessionward ARGS --instance DIR [-- POSITIONAL...]` and return the completed process (never raises
    on exit code). `positional` goes after `--`, for ids that may start with `-` (random kids and ids do)."""
    return subprocess.run(
        [*sessionward_command(), *args, "--instance", str(instance), *(("--", *positional) if positional else ())],
        input=input,
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_child_env(env),
        stdin=None if input is not None else subprocess.DEVNULL,
    )


class ServerProcess:
    """One `sessionward serve` subprocess. Not started until `start()`; `stop()` is idempotent."""

    #: every server started in this test process, for failure reports (see conftest.py)
    started: weakref.WeakSet[ServerProcess] = weakref.WeakSet()

    def __init__(
        self,
        *,
        instance: str | os.PathLike[str],
        host: str = "127.0.0.1",
        port: int | None = None,
        workers: int = 1,
        env: Mapping[str, str] | None = None,
        extra_args: Sequence[str] = (),
        management_port: int | None = None,
        flavour: str = "wsgi",
    ) -> None:
        if flavour not in FLAVOURS:
            raise ValueError(f"flavour must be one of {sorted(FLAVOURS)}")
        #: "wsgi" (the Flask app, gunicorn gthread workers), "asgi" (the ASGI app, gunicorn + uvicorn workers)
        #: or "uvicorn" (the ASGI app under uvicorn alone)
        self.flavour = flavour
        self.instance = Path(instance)
        self.host = host
        self.port = port or free_port(host)
        #: the loopback management listener (/metrics, detailed /healthz): a free port of its own per server
        self.management_port = management_port if management_port is not None else free_port("127.0.0.1")
        self.workers = workers
        self.env = dict(env or {})
        self.extra_args = list(extra_args)
        self.admin_password: str | None = None
        self._last_exit: int | None = None
        self.output: list[str] = []  # every line the server printed (stdout and stderr), across restarts
        self._proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self._lock = threading.Lock()

    # -- addresses ------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def management_url(self, path: str) -> str:
        """Plain HTTP on loopback: the management listener (`--management-port`)."""
        return f"http://127.0.0.1:{self.management_port}{path}"

    @property
    def certfile(self) -> Path:
        """The certificate the server presents (its `--certfile`, else the one made in the instance)."""
        if "--certfile" in self.extra_args:
            return Path(self.extra_args[self.extra_args.index("--certfile") + 1])
        return self.instance / "tls-cert.pem"

    @property
    def verify(self) -> str:
        """For `requests(verify=...)`: the self-signed certificate is the trust anchor (SAN 127.0.0.1 etc.)."""
        return str(self.certfile)

    @property
    def keyfile(self) -> Path:
        return self.instance / "tls-key.pem"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def output_text(self) -> str:
        with self._lock:
            return "\n".join(self.output)

    # -- life cycle -----------------------------------------------------------------------------
    def start(self, *, timeout: float = 45, healthy: bool = True) -> ServerProcess:
        """Start and wait until `/healthz` answers 200 (or, with `healthy=False`, answers at all, e.g. 503
        while a store is down). Raises `ServerError` (with the server's output) otherwise."""
        if self.running:
            return self
        self.instance.mkdir(mode=0o700, parents=True, exist_ok=True)
        cmd = [
            *sessionward_command(), "serve",
            "--host", self.host, "--port", str(self.port),
            "--instance", str(self.instance), "--workers", str(self.workers),
            "--management-port", str(self.management_port),
            *FLAVOURS[self.flavour], *self.extra_args,
        ]
        self._proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            env=_child_env(self.env),
            start_new_session=True,  # its own process group: stop() ends master and workers together
        )
        self._reader = threading.Thread(target=self._read, args=(self._proc,), daemon=True)
        self._reader.start()
        ServerProcess.started.add(self)
        try:
            self._wait_healthy(timeout, healthy=healthy)
        except BaseException:
            self.stop()
            raise
        return self

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        take_password = False
        for raw in proc.stdout:
            line = raw.rstrip("\n")
            with self._lock:
                self.output.append(line)
            if take_password and self.admin_password is None:
                self.admin_password = line.strip()
                take_password = False
            elif ADMIN_BANNER in line:
                take_password = True

    def _wait_healthy(self, timeout: float, *, healthy: bool = True) -> None:
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                self._join_reader()
                raise ServerError(f"sessionward serve exited with {self._proc.returncode}:\n{self._tail()}")
            if not self.certfile.exists():  # made on first start, before the server listens
                time.sleep(0.1)
                continue
            try:
                r = requests.get(self.url("/healthz"), verify=self.verify, timeout=2)
                if r.status_code == 200 or (not healthy and r.status_code == 503):
                    return
                if r.status_code == 500:  # a bug, not a slow start: no point in waiting
                    raise ServerError(f"/healthz answered 500:\n{self._tail()}")
                last = f"HTTP {r.status_code}: {r.text[:200]}"
            except requests.RequestException as exc:
                last = exc
            time.sleep(0.1)
        raise ServerError(f"no healthy /healthz at {self.base_url} within {timeout:.0f}s (last: {last}):\n"
                          f"{self._tail()}")

    def stop(self, *, timeout: float = 10) -> int | None:
        """SIGTERM the process group, SIGKILL after `timeout`; returns the exit code (None if never started)."""
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            self._signal(proc, signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._signal(proc, signal.SIGKILL)
                proc.wait(timeout=5)
        # workers that outlived the master (should not happen) die with the group
        self._signal(proc, signal.SIGKILL)
        self._join_reader()
        if proc.stdout is not None:
            proc.stdout.close()
        self._proc, self._last_exit = None, proc.returncode
        return proc.returncode

    def restart(self, *, timeout: float = 45, healthy: bool = True) -> ServerProcess:
        """Stop and start again on the same port and instance (the admin password stays known)."""
        self.stop()
        return self.start(timeout=timeout, healthy=healthy)

    @property
    def pgid(self) -> int | None:
        """The process group of the running server (its pid), or None."""
        return self._proc.pid if self._proc is not None else None

    def worker_pids(self) -> list[int]:
        """The workers of the running server: processes of its group whose parent is the master (gunicorn's
        workers, or uvicorn's supervised workers)."""
        master = self.pgid
        if master is None:
            return []
        out = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()  # state, ppid, pgrp, ...
            if int(fields[1]) == master and int(fields[2]) == master:
                out.append(int(entry.name))
        return sorted(out)

    @staticmethod
    def _signal(proc: subprocess.Popen[str], sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)  # pgid == pid thanks to start_new_session

    def _join_reader(self) -> None:
        if self._reader is not None:
            self._reader.join(timeout=5)
            self._reader = None

    def describe(self, lines: int = 40) -> str:
        """A few lines for a failure report: address, state, and the tail of the output."""
        state = "running" if self.running else f"stopped (exit {self._last_exit})"
        return f"{self.base_url} ({self.flavour}) instance={self.instance} {state}\n{self._tail(lines)}"

    def _tail(self, lines: int = 40) -> str:
        with self._lock:
            return "\n".join(self.output[-lines:])

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- conveniences ---------------------------------------------------------------------------
    def cli(self, *args: str, input: str | None = None, timeout: float = 60, positional: Sequence[str] = ()
            ) -> subprocess.CompletedProcess[str]:
        """`sessionward ARGS` against this server's instance, with the same environment (see `run_cli`)."""
        return run_cli(*args, instance=self.instance, env=self.env, input=input, timeout=timeout,
                       positional=positional)

    def add_user(self, name: str, password: str) -> None:
        result = self.cli("users", "add", name, "--password-stdin", input=password + "\n")
        if result.returncode != 0:
            raise ServerError(f"users add {name!r} failed ({result.returncode}): {result.stderr.strip()}")


# -- HTTP helpers ------------------------------------------------------------------------------

def new_http_session(server: ServerProcess) -> requests.Session:
    """A `requests` session that trusts `server`'s self-signed certificate."""
    s = requests.Session()
    s.trust_env = False  # else REQUESTS_CA_BUNDLE from the environment overrides `verify` (psf/requests#3829)
    s.verify = server.verify
    return s


def csrf_from(html: str) -> str:
    """The first `csrf_token` hidden field of a page. Raises AssertionError if there is none."""
    match = _CSRF_RE.search(html)
    assert match, "no csrf_token field in the page"
    return unescape(match.group(1))


def login(
    http: requests.Session, server: ServerProcess, username: str, password: str, *, next: str | None = None
) -> requests.Response:
    """GET the login form, POST it with its CSRF token; returns the POST's response (redirects not followed)."""
    form = http.get(server.url("/login"), timeout=10, allow_redirects=False)
    assert form.status_code == 200, form.status_code
    data = {"username": username, "password": password, "csrf_token": csrf_from(form.text)}
    if next is not None:
        data["next"] = next
    return http.post(server.url("/login"), data=data, timeout=10, allow_redirects=False)
