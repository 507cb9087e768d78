"""In-process cost per request: `app.wsgi_app(environ, start_response)` called directly, no server, no socket.

Every round runs every variant once (forward order in even rounds, reversed in odd rounds, so slow drift
of the machine does not favour one side), `n` requests each (the fastest of three batches), and the bare Flask view in the same round is
subtracted: overhead(variant, round) = us/request(variant) - us/request(bare). We report the median over
rounds and the spread (min..max).
"""

from __future__ import annotations

import gc
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from werkzeug.test import EnvironBuilder

from .apps import PASSWORD, Variant, close_app


@dataclass
class Series:
    """Per-round values in microseconds."""

    values: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else float("nan")

    @property
    def lo(self) -> float:
        return min(self.values) if self.values else float("nan")

    @property
    def hi(self) -> float:
        return max(self.values) if self.values else float("nan")


def _start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
    _start_response.status = status  # type: ignore[attr-defined]


def make_caller(app: Any, path: str, headers: dict[str, str], *, expect: str) -> Callable[[], None]:
    """A function that performs one request and checks its status (a wrong status aborts the bench: a
    variant that answers 401 fast proves nothing)."""
    environ = EnvironBuilder(path=path, headers=headers, base_url="https://localhost/").get_environ()
    wsgi = app.wsgi_app

    def call() -> None:
        body = wsgi(dict(environ), _start_response)
        try:
            for _ in body:
                pass
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()

    call()
    status = _start_response.status  # type: ignore[attr-defined]
    if not status.startswith(expect):
        raise RuntimeError(f"{app.name} {path}: expected {expect}, got {status}")
    return call


BATCHES = 3


def _time_per_call(call: Callable[[], None], n: int) -> float:
    """Microseconds per call: the fastest of `BATCHES` batches of `n // BATCHES` calls (the machine is shared:
    the fastest batch is the one least disturbed by other processes)."""
    for _ in range(max(5, n // 20)):  # warm caches (and the token cache) before timing
        call()
    gc.collect()
    per = max(1, n // BATCHES)
    best = float("inf")
    for _ in range(BATCHES):
        start = time.perf_counter_ns()
        for _ in range(per):
            call()
        best = min(best, (time.perf_counter_ns() - start) / per / 1000)
    return best


@dataclass
class InprocResult:
    rounds: int
    n: int
    absolute: dict[str, Series]  # us/request, /protected
    overhead: dict[str, Series]  # us/request minus bare, /protected
    public_overhead: dict[str, Series]  # us/request minus bare, /public with the credential sent
    warnings: list[str] = field(default_factory=list)


def run_inproc(variants: list[Variant], workdir: Path, headers: dict[str, dict[str, str]], *, rounds: int, n: int,
               log: Callable[[str], None]) -> InprocResult:
    apps: dict[str, Any] = {}
    try:
        for v in variants:
            apps[v.name] = v.make_app(workdir)  # a local cache is healthy before this returns
        resets_before = _cache_resets(apps)
        result = _rounds(variants, apps, headers, rounds=rounds, n=n, log=log)
        for name, before in resets_before.items():
            store = _cached_store(apps[name])
            if store is not None and (store._session != before or not store.healthy):
                result.warnings.append(f"{name}: the local cache was reset or unhealthy during timing "
                                       "(some requests read through to Redis)")
                log(f"  WARNING {result.warnings[-1]}")
        return result
    finally:
        for app in apps.values():
            close_app(app)


def _cached_store(app: Any) -> Any:
    from .apps import app_stores

    return next((s for s in app_stores(app) if hasattr(s, "wait_healthy") and s.healthy), None)


def _cache_resets(apps: dict[str, Any]) -> dict[str, int]:
    """For each app with a healthy local cache: its subscription counter (`CachedStore` moves it on every reset)."""
    out = {}
    for name, app in apps.items():
        store = _cached_store(app)
        if store is not None:
            out[name] = store._session
    return out


def _rounds(variants: list[Variant], apps: dict[str, Any], headers: dict[str, dict[str, str]], *, rounds: int,
            n: int, log: Callable[[str], None]) -> InprocResult:
    callers = {
        v.name: (
            make_caller(apps[v.name], "/protected", headers[v.name], expect="200"),
            make_caller(apps[v.name], "/public", headers[v.name], expect="200"),
        )
        for v in variants
    }
    absolute = {v.name: Series() for v in variants}
    overhead = {v.name: Series() for v in variants}
    public_overhead = {v.name: Series() for v in variants}
    names = [v.name for v in variants]
    for r in range(rounds):
        order = names if r % 2 == 0 else names[::-1]
        protected: dict[str, float] = {}
        public: dict[str, float] = {}
        for name in order:
            prot_call, pub_call = callers[name]
            protected[name] = _time_per_call(prot_call, n)
            public[name] = _time_per_call(pub_call, n)
        for name in names:
            absolute[name].values.append(protected[name])
            overhead[name].values.append(protected[name] - protected["bare"])
            public_overhead[name].values.append(public[name] - public["bare"])
        log(f"  in-process round {r + 1}/{rounds}: bare {protected['bare']:.1f} us")
    return InprocResult(rounds=rounds, n=n, absolute=absolute, overhead=overhead, public_overhead=public_overhead)


@dataclass
class LoginResult:
    verify_ms: Series
    login_ms: Series
    params: str


def run_login(workdir: Path, *, repeats: int, log: Callable[[str], None]) -> LoginResult:
    """One argon2 verify (production parameters) against a whole sessionward login: throttle check,
    user lookup, verify, rehash check, throttle reset, session creation."""
    from sessionward.auth import Authenticator
    from sessionward.clock import SystemClock
    from sessionward.config import ThrottlePolicy
    from sessionward.db import make_engine
    from sessionward.passwords import Argon2idHasher, PasswordPolicy
    from sessionward.sessions import SessionManager
    from sessionward.stores.sql import SQLStore
    from sessionward.throttle import LoginThrottle
    from sessionward.users import UserStore

    clock = SystemClock()
    hasher = Argon2idHasher()
    engine = make_engine(f"sqlite:///{workdir / 'login.sqlite3'}")
    users = UserStore(engine, hasher=hasher, policy=PasswordPolicy(), clock=clock)
    store = SQLStore(engine)
    user = users.get_by_username("login-user") or users.create("login-user", PASSWORD)
    auth = Authenticator(users=users, hasher=hasher, throttle=LoginThrottle(store, ThrottlePolicy(), clock), clock=clock)
    sessions = SessionManager(store=store, clock=clock)
    verify, login = Series(), Series()
    for i in range(repeats + 1):
        t0 = time.perf_counter_ns()
        assert hasher.verify(user.password_hash, PASSWORD)
        t1 = time.perf_counter_ns()
        u = auth.authenticate("login-user", PASSWORD, ip="127.0.0.1")
        sessions.login(u.id, user_agent="bench", ip="127.0.0.1")
        t2 = time.perf_counter_ns()
        if i:  # the first pair warms up
            verify.values.append((t1 - t0) / 1e6)
            login.values.append((t2 - t1) / 1e6)
    p = hasher.parameters
    log(f"  login: verify {verify.median:.1f} ms, login {login.median:.1f} ms")
    return LoginResult(verify, login, f"argon2id m={p.memory_cost} KiB, t={p.time_cost}, p={p.parallelism}")
