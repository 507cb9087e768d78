"""Real Redis and PostgreSQL for the tests (no mocks).

Fixtures:
- `redis_url` (session): `SESSIONWARD_TEST_REDIS_URL`, else 127.0.0.1:6379 if it answers PING, else a throwaway
  `redis-server` on a free port (no persistence, temp dir), stopped at the end.
- `redis_prefix` (function): a fresh key prefix; every key under it is deleted after the test.
- `postgres_url` (session): a temporary database `sw_test_<random>` on `SESSIONWARD_TEST_PG_URL`
  (default postgresql://postgres@127.0.0.1:5432/test), dropped at the end.

Helpers for fault and topology tests (import them from `_services`):
- `start_redis_server(port=None) -> RedisServer` with `.url`, `.port`, `.stop()`, `.start()`;
- `start_redis_cluster(masters=3) -> RedisCluster` with `.url` (`redis+cluster://...`), `.stop()`;
- `start_redis_sentinel() -> RedisSentinel` with `.url` (`redis+sentinel://...`), `.stop()`.

A missing service skips the tests with the reason shown, or fails them when `CI` is set.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

import pytest

__all__ = [
    "RedisCluster",
    "RedisSentinel",
    "RedisServer",
    "free_port",
    "missing_service",
    "start_redis_cluster",
    "start_redis_sentinel",
    "start_redis_server",
]

REDIS_HINT = "install redis-server (apt-get install redis-server) or set SESSIONWARD_TEST_REDIS_URL"
PG_HINT = (
    "run PostgreSQL on 127.0.0.1:5432 (user postgres, trust auth, database `test`; apt-get install postgresql) "
    "or set SESSIONWARD_TEST_PG_URL"
)


def missing_service(message: str) -> None:
    """Fail under CI (a missing service must not pass silently there), skip with the reason otherwise."""
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


_handed_out: set[tuple[str, int]] = set()
_handed_out_lock = threading.Lock()


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now and that this process has not handed out before: servers started at once
    from several threads bind their ports only later, and the kernel may offer a just-closed probe's port again
    (two `sessionward serve` on one port would share it: their workers bind with SO_REUSEPORT)."""
    while True:
        with socket.socket() as s:
            s.bind((host, 0))
            port = int(s.getsockname()[1])
        with _handed_out_lock:
            if (host, port) not in _handed_out:
                _handed_out.add((host, port))
                return port


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_cluster_port() -> int:
    """A free port p <= 55535 whose cluster bus port p + 10000 is free too."""
    for _ in range(200):
        port = 20000 + secrets.randbelow(30000)
        if _port_free(port) and _port_free(port + 10000):
            return port
    raise RuntimeError("no free port pair for a Redis Cluster node")


def _redis_answers(url: str, timeout: float = 0.5) -> bool:
    import redis

    try:
        client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except redis.RedisError:
        return False


def _wait_for(check, what: str, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not come up within {timeout} s")


def _redis_server_binary() -> str | None:
    return shutil.which("redis-server")


@dataclass
class RedisServer:
    """A private `redis-server` process. `stop()` kills it; `start()` brings it back on the same port
    (empty: nothing is persisted)."""

    port: int
    dir: str
    extra_args: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        binary = _redis_server_binary()
        if binary is None:
            raise RuntimeError(f"redis-server not found on PATH; {REDIS_HINT}")
        if self.proc is not None and self.proc.poll() is None:
            return self
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", self.dir, "--protected-mode", "no", *self.extra_args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_for(lambda: _redis_answers(self.url, 0.2), f"redis-server on port {self.port}")
        return self

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def start_redis_server(port: int | None = None, *, extra_args: list[str] | None = None) -> RedisServer:
    """Start a private redis-server (free port unless given). Raises RuntimeError if there is none on PATH.
    Call `.cleanup()` (or `.stop()`) when done."""
    server = RedisServer(
        port=port or free_port(), dir=tempfile.mkdtemp(prefix="sw-redis-"), extra_args=list(extra_args or [])
    )
    try:
        return server.start()
    except BaseException:
        server.cleanup()
        raise


@dataclass
class RedisCluster:
    servers: list[RedisServer]

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{s.port}" for s in self.servers)

    def stop(self) -> None:
        for s in self.servers:
            s.cleanup()


def start_redis_cluster(masters: int = 3) -> RedisCluster:
    """Start `masters` cluster-enabled redis-servers and join them with `redis-cli --cluster create`.
    Raises RuntimeError if redis-server/redis-cli are missing or the cluster does not form."""
    cli = shutil.which("redis-cli")
    if cli is None or _redis_server_binary() is None:
        raise RuntimeError(f"redis-server and redis-cli are needed; {REDIS_HINT}")
    servers: list[RedisServer] = []
    try:
        for _ in range(masters):
            port = free_cluster_port()
            servers.append(
                start_redis_server(
                    port,
                    extra_args=["--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{port}.conf",
                                "--cluster-node-timeout", "2000"],
                )
            )
        subprocess.run(
            [cli, "--cluster", "create", *(f"127.0.0.1:{s.port}" for s in servers), "--cluster-yes"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30,
        )

        def _ok() -> bool:
            for s in servers:
                out = subprocess.run([cli, "-p", str(s.port), "cluster", "info"], check=False, capture_output=True,
                                     text=True)
                if "cluster_state:ok" not in out.stdout:
                    return False
            return True

        _wait_for(_ok, "redis cluster", timeout=20)
        return RedisCluster(servers)
    except BaseException:
        for s in servers:
            s.cleanup()
        raise


@dataclass
class RedisSentinel:
    master: RedisServer
    sentinel_port: int
    dir: str
    proc: subprocess.Popen[bytes] | None = None
    service: str = "swmaster"

    @property
    def url(self) -> str:
        return f"redis+sentinel://127.0.0.1:{self.sentinel_port}/{self.service}/0"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None
        self.master.cleanup()
        shutil.rmtree(self.dir, ignore_errors=True)


def start_redis_sentinel() -> RedisSentinel:
    """One master plus one sentinel process (`redis-server --sentinel`) watching it."""
    binary = _redis_server_binary()
    if binary is None:
        raise RuntimeError(f"redis-server not found on PATH; {REDIS_HINT}")
    master = start_redis_server()
    sdir = tempfile.mkdtemp(prefix="sw-sentinel-")
    port = free_port()
    conf = os.path.join(sdir, "sentinel.conf")
    with open(conf, "w") as f:
        f.write(
            f"port {port}\nbind 127.0.0.1\nprotected-mode no\ndir {sdir}\n"
            f"sentinel monitor swmaster 127.0.0.1 {master.port} 1\n"
            "sentinel down-after-milliseconds swmaster 5000\n"
        )
    sentinel = RedisSentinel(master=master, sentinel_port=port, dir=sdir)
    try:
        sentinel.proc = subprocess.Popen(
            [binary, conf, "--sentinel"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

        def _knows_master() -> bool:
            import redis

            try:
                c = redis.Redis(host="127.0.0.1", port=port, socket_timeout=0.3)
                try:
                    return c.execute_command("SENTINEL", "get-master-addr-by-name", "swmaster") is not None
                finally:
                    c.close()
            except redis.RedisError:
                return False

        _wait_for(_knows_master, "redis-sentinel")
        return sentinel
    except BaseException:
        sentinel.stop()
        raise


# -- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    env = os.environ.get("SESSIONWARD_TEST_REDIS_URL")
    if env:
        if not _redis_answers(env):
            missing_service(f"SESSIONWARD_TEST_REDIS_URL={env!r} does not answer PING; {REDIS_HINT}")
        yield env
        return
    default = "redis://127.0.0.1:6379/0"
    if _redis_answers(default):
        yield default
        return
    if _redis_server_binary() is None:
        missing_service(f"no Redis on 127.0.0.1:6379 and no redis-server on PATH; {REDIS_HINT}")
    server = start_redis_server()
    try:
        yield server.url
    finally:
        server.cleanup()


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix no other test uses; its keys are deleted afterwards."""
    import redis

    prefix = f"swtest:{secrets.token_hex(6)}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    import psycopg

    base = os.environ.get("SESSIONWARD_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
    libpq_url = base.replace("postgresql+psycopg://", "postgresql://")
    try:
        admin = psycopg.connect(libpq_url, autocommit=True, connect_timeout=3)
    except psycopg.Error as exc:
        missing_service(f"PostgreSQL at {base!r} is not reachable ({type(exc).__name__}); {PG_HINT}")
        raise  # unreachable
    name = f"sw_test_{secrets.token_hex(6)}"
    try:
        admin.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error as exc:
        admin.close()
        missing_service(f"cannot create a test database on {base!r} ({exc}); {PG_HINT}")
    try:
        yield _with_database(libpq_url, name)
    finally:
        try:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            admin.close()
