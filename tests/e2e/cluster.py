"""Several real `sessionward serve` processes sharing one PostgreSQL and one Redis (README "Deployment").

- `SHARED_SECRETS`: the CSRF key, refresh key and KEK every instance of this test process gets (hex, from
  `secrets`, made once per process so that every database this process creates is readable by every instance);
- `private_database(postgres_url)`: a fresh PostgreSQL database next to the fixture's one (so each test module
  has its own users, signing keys and first-start admin), dropped afterwards;
- `redis_db_url(url, db)` / `flush_redis(url)`: a Redis URL on another DB number, and FLUSHDB of only that DB;
- `cluster_env(...)`: the one environment every instance gets;
- `start_instances(...)`: N servers with that environment and their own instance folders (TLS cert, metrics);
- small HTTP helpers that send exactly one cookie to exactly one instance (no shared cookie jar), so a test
  sees what *that* instance decides.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from serverproc import ServerProcess, csrf_from, login, new_http_session

__all__ = [
    "COOKIE",
    "add_users",
    "claimed_redis_db",
    "client_session",
    "SHARED_SECRETS",
    "cluster_env",
    "dashboard_status",
    "flush_redis",
    "logged_in_session",
    "page_csrf",
    "private_database",
    "redis_db_url",
    "session_cookie",
    "start_instances",
]

COOKIE = "__Host-session"

SHARED_SECRETS: dict[str, str] = {
    "SESSIONWARD_CSRF_KEY": secrets.token_hex(32),
    "SESSIONWARD_REFRESH_KEY": secrets.token_hex(32),
    "SESSIONWARD_KEK": secrets.token_hex(32),
}


# -- services -----------------------------------------------------------------------------------

@contextlib.contextmanager
def private_database(postgres_url: str) -> Iterator[str]:
    """A new, empty database on the server of `postgres_url`; dropped (FORCE) on exit."""
    import psycopg

    parts = urlsplit(postgres_url)
    name = f"{parts.path.lstrip('/')}_{secrets.token_hex(4)}"
    with psycopg.connect(postgres_url, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))
    finally:
        with psycopg.connect(postgres_url, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def add_users(database_url: str, users: Mapping[str, str]) -> None:
    """Create users straight in the shared database (what `sessionward users add` does, without a process
    start per user: the CLI path itself is tested once in test_multi_instance)."""
    from sessionward.clock import SystemClock
    from sessionward.db import make_engine
    from sessionward.passwords import Argon2idHasher, PasswordPolicy
    from sessionward.users import UserStore

    engine = make_engine(database_url)
    try:
        store = UserStore(engine, hasher=Argon2idHasher(), policy=PasswordPolicy(), clock=SystemClock())
        for name, password in users.items():
            store.create(name, password)
    finally:
        engine.dispose()


def redis_db_url(url: str, db: int) -> str:
    """`url` (redis:// or rediss://) pointing at database number `db`."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, parts.fragment))


#: Redis database numbers these e2e modules may use on a shared Redis (0 is the `redis_url` fixture's, 15 the
#: benchmarks'). A module claims one with a marker key, so two test runs at once never share (or flush) one.
E2E_REDIS_DBS = (11, 12, 13, 14)
CLAIM_KEY = "swtest:claim"


@contextlib.contextmanager
def claimed_redis_db(url: str, preferred: int, *, ttl: int = 1800) -> Iterator[str]:
    """A Redis URL on a database number of `E2E_REDIS_DBS` (`preferred` first) that no other run holds:
    claimed with `SET NX` on a marker key, emptied (FLUSHDB of that database only) when claimed and when
    released. Raises RuntimeError if every one is held."""
    import redis

    token = secrets.token_hex(8)
    for db in (preferred, *(d for d in E2E_REDIS_DBS if d != preferred)):
        candidate = redis_db_url(url, db)
        client = redis.Redis.from_url(candidate, socket_timeout=5, socket_connect_timeout=5)
        try:
            if not client.set(CLAIM_KEY, token, nx=True, ex=ttl):
                continue  # another run holds it
            for key in client.scan_iter(count=1000):  # leftovers of an earlier, interrupted run
                if key != CLAIM_KEY.encode():
                    client.delete(key)
        finally:
            client.close()
        try:
            yield candidate
        finally:
            client = redis.Redis.from_url(candidate, socket_timeout=5, socket_connect_timeout=5)
            try:
                if client.get(CLAIM_KEY) == token.encode():
                    client.flushdb()
            finally:
                client.close()
        return
    raise RuntimeError(f"every Redis database of {E2E_REDIS_DBS} is held by another test run")


def flush_redis(url: str) -> None:
    """FLUSHDB on the one database `url` names (never FLUSHALL)."""
    import redis

    client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
    try:
        client.flushdb()
    finally:
        client.close()


def cluster_env(*, database_url: str | None = None, store_url: str | None = None,
                extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment every instance gets: the same URLs and the same keys."""
    env = dict(SHARED_SECRETS)
    if database_url:
        env["SESSIONWARD_DATABASE_URL"] = database_url
    if store_url:
        env["SESSIONWARD_STORE_URL"] = store_url
    env.update(extra or {})
    return env


def start_instances(
    start_server: Callable[..., ServerProcess], env: Mapping[str, str], *, count: int = 2, workers: int = 1
) -> list[ServerProcess]:
    """`count` servers, one after the other (the first creates the schema and the admin), each with its own
    instance folder and port, all with `env`. They are stopped by the `start_server` fixture."""
    return [start_server(env=dict(env), workers=workers) for _ in range(count)]


# -- HTTP ---------------------------------------------------------------------------------------

class _SourceAdapter(HTTPAdapter):
    """Connects from a given local address (any of 127.0.0.0/8 on Linux loopback)."""

    def __init__(self, source: str, **kwargs: Any) -> None:
        self._source = source  # before super().__init__, which builds the pool manager
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["source_address"] = (self._source, 0)
        super().init_poolmanager(*args, **kwargs)


def client_session(server: ServerProcess, source: str | None = None, *, pool: int = 10) -> requests.Session:
    """A `requests` session trusting `server`'s certificate, connecting from `source` (e.g. "127.0.0.2", so
    that the server sees a distinct client address for throttling) if given."""
    http = new_http_session(server)
    if source is not None:
        adapter = _SourceAdapter(source, pool_connections=pool, pool_maxsize=pool)
        http.mount("https://", adapter)
    return http


def logged_in_session(server: ServerProcess, username: str, password: str, *, source: str | None = None
                      ) -> requests.Session:
    """A `requests` session signed in on `server` through the login form. Raises AssertionError otherwise."""
    http = client_session(server, source)
    r = login(http, server, username, password)
    assert r.status_code == 303, (r.status_code, r.text[:300])
    return http


def session_cookie(http: requests.Session) -> str:
    """The session cookie value in `http`'s jar (exactly one)."""
    values = [c.value for c in http.cookies if c.name == COOKIE]
    assert len(values) == 1, f"expected one {COOKIE} cookie, got {len(values)}"
    return values[0] or ""


def _get(server: ServerProcess, path: str, cookie: str | None, timeout: float = 10) -> requests.Response:
    headers = {"Cookie": f"{COOKIE}={cookie}"} if cookie is not None else {}
    with requests.Session() as s:
        s.trust_env = False
        return s.get(server.url(path), headers=headers, verify=server.verify, timeout=timeout, allow_redirects=False)


def dashboard_status(server: ServerProcess, cookie: str | None, timeout: float = 10) -> int:
    """GET /dashboard on `server` with exactly this session cookie: 200 signed in, 303 not, 503 store down."""
    r = _get(server, "/dashboard", cookie, timeout)
    if r.status_code == 303:
        assert r.headers["Location"].startswith("/login"), r.headers["Location"]
    return r.status_code


def page_csrf(server: ServerProcess, cookie: str, path: str = "/sessions") -> str:
    """The CSRF token `server` puts in a signed-in page for this session."""
    r = _get(server, path, cookie)
    assert r.status_code == 200, (path, r.status_code)
    return csrf_from(r.text)


def post_form(server: ServerProcess, path: str, cookie: str, data: Mapping[str, str]) -> requests.Response:
    """POST a form to `server` with exactly this session cookie and a same-origin `Origin` header."""
    with requests.Session() as s:
        s.trust_env = False
        return s.post(
            server.url(path), data=dict(data), verify=server.verify, timeout=10, allow_redirects=False,
            headers={"Cookie": f"{COOKIE}={cookie}", "Origin": server.base_url},
        )


def instance_dirs(servers: list[ServerProcess]) -> list[Path]:
    return [s.instance for s in servers]
