"""Where the time of one authenticated request goes, measured in this run (in-process):

- `profile_variants`: cProfile of each sessionward variant's `/protected` (and of one cookie app's `/public`):
  the top functions by own time, and own time grouped by package (werkzeug, flask, sessionward, redis-py, ...);
- `count_calls`: what one request asks of the storage layer, counted by wrapping the app's own store objects:
  store methods called, calls that reached the backend behind a local cache (`CachedStore`'s inner store),
  Redis round trips (`send_packed_command` on the request's thread: a pipeline is one), user lookups through
  the extension's per-process user cache (`recent_users.get`) and user-row reads in SQL (`UserStore.get`);
- `store_call_costs`: what one per-request store read costs on each store, against the same lookup done with
  the driver directly;
- `profile_cold`: for token variants, the cold path against the hot one: the same app profiled with distinct
  tokens (the verified-token cache turned off) and with one token, per function the difference;
- `profile_http`: gunicorn's workers profiling themselves (CPU time) under load from the load generator, so
  that what a request costs over HTTP (gunicorn's own parsing and writing included) is split by package and
  compared with the bare view's.

The report derives the reasons for missed goals from these numbers, so they describe the code that ran.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .apps import Variant, app_stores, close_app
from .inproc import make_caller

CALLS = 2000
TOP = 12
#: the variants whose gunicorn workers are profiled under load: bare, the headers alone, one anchor, and the
#: sessionward configurations the HTTP goals name
HTTP_PROFILED = ("bare", "bare_headers", "fje_hs256", "sw_jwt_hs256", "sw_jwt_hs256_redis_cache",
                 "sw_jwt_es256_redis_cache", "sw_cookie_sqlite", "sw_cookie_redis_cache")

#: The SessionStore methods counted (the Protocol in `sessionward.stores.base`).
STORE_METHODS = (
    "create", "get", "get_by_secret", "load_by_secret", "token_state", "update", "replace", "advance", "delete",
    "delete_for_user", "list_for_user", "list_all", "deny", "is_denied", "get_epoch", "bump_epoch", "throttle_read",
    "throttle_update", "throttle_reset", "purge_expired", "ping",
)


@dataclass
class Profile:
    """One profiled path: us/request under the profiler, top rows, own time per package."""

    total_us: float
    rows: list[tuple[float, float, float, str]]  # own us, cumulative us, calls per request, where
    by_package: dict[str, float]


@dataclass
class ProfileResult:
    profiles: dict[str, Profile] = field(default_factory=dict)  # variant name (or "public:<name>") -> profile
    counts: dict[str, dict[str, float]] = field(default_factory=dict)  # variant name -> per-request counts
    cost_rows: list[str] = field(default_factory=list)
    costs: dict[tuple[str, str], float] = field(default_factory=dict)  # (call, store) -> median us
    http_requests: dict[str, int] = field(default_factory=dict)  # variant -> requests its worker profile saw


def _short(path: str) -> str:
    for marker in ("site-packages/", "src/", "lib/python3"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def _package(filename: str, func: str) -> str:
    """Which package a profiled function belongs to (C functions by the object they belong to)."""
    if filename == "~":
        if "sqlite3" in func:
            return "sqlite3 (C)"
        if "_socket" in func or "select" in func or "poll" in func:
            return "socket I/O"
        if "_hashlib" in func or "openssl" in func:
            return "hashlib (C)"
        return "builtins (C)"
    short = _short(filename)
    for pkg in ("werkzeug", "flask", "sessionward", "redis", "sqlalchemy", "jwt", "cryptography", "prometheus_client",
                "gunicorn"):
        if short.startswith(pkg + "/"):
            return pkg
    return "stdlib/other"


def _raw(call: Callable[[], None], calls: int,
         warm: int = 200) -> dict[tuple[str, int, str], tuple[float, float, float]]:
    """Per function (file, line, name): own us, cumulative us and calls, per call of `call`."""
    for _ in range(warm):
        call()
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(calls):
        call()
    prof.disable()
    return _per_request(pstats.Stats(prof, stream=io.StringIO()), calls)


def _per_request(stats: pstats.Stats, requests: int) -> dict[tuple[str, int, str], tuple[float, float, float]]:
    return {key: (tt / requests * 1e6, ct / requests * 1e6, nc / requests)
            for key, (_cc, nc, tt, ct, _callers) in stats.stats.items()}  # type: ignore[attr-defined]


def _summary(raw: dict[tuple[str, int, str], tuple[float, float, float]]) -> Profile:
    rows = []
    packages: Counter[str] = Counter()
    for (filename, line, func), (tt, ct, nc) in raw.items():
        packages[_package(filename, func)] += tt
        rows.append((tt, ct, nc, f"{_short(filename)}:{line}({func})"))
    rows.sort(reverse=True)
    return Profile(sum(r[0] for r in rows), rows[:TOP], dict(packages.most_common()))


def _difference(a: dict[tuple[str, int, str], tuple[float, float, float]],
                b: dict[tuple[str, int, str], tuple[float, float, float]]) -> Profile:
    """`a` minus `b`, per function and per package (what `a`'s requests do more than `b`'s)."""
    zero = (0.0, 0.0, 0.0)
    diff = {k: tuple(x - y for x, y in zip(a.get(k, zero), b.get(k, zero), strict=True)) for k in a.keys() | b.keys()}
    return _summary(diff)  # type: ignore[arg-type]


def profile_call(call: Callable[[], None], calls: int) -> Profile:
    return _summary(_raw(call, calls))


def format_profile(p: Profile) -> list[str]:
    lines = [f"total {p.total_us:7.1f} us/request under the profiler  (own us, cumulative us, calls/request)"]
    lines += [f"{tt:7.1f} {ct:7.1f} {nc:5.1f}  {where}" for tt, ct, nc, where in p.rows]
    lines.append("own time by package: " + ", ".join(f"{k} {v:.0f}" for k, v in p.by_package.items() if v >= 0.5))
    return lines


# -- counting what a request asks of the storage layer ------------------------------------------------

def _wrap_methods(obj: Any, label: str, names: tuple[str, ...], counts: Counter[str], tid: int,
                  undo: list[Callable[[], None]]) -> None:
    """Shadow `obj`'s methods with counting wrappers (instance attributes; `undo` removes them)."""
    for name in names:
        if name in vars(obj) or not callable(getattr(obj, name, None)):
            continue
        original = getattr(obj, name)

        def wrapper(*args: Any, _f: Any = original, _k: str = f"{label}.{name}", **kwargs: Any) -> Any:
            if threading.get_ident() == tid:
                counts[_k] += 1
            return _f(*args, **kwargs)

        setattr(obj, name, wrapper)
        undo.append(lambda o=obj, n=name: delattr(o, n))


def count_calls(app: Any, call: Callable[[], None], *, requests: int = 200) -> dict[str, float]:
    """Per request of `call`: store method calls (`store.<method>`), calls that reached the store behind a
    local cache (`backend.<method>`), Redis round trips and user-row reads. Counts only this thread (the
    cache's subscriber pings on its own)."""
    import redis.connection

    from sessionward.flask.extension import EXTENSION_KEY

    for _ in range(20):
        call()
    counts: Counter[str] = Counter()
    tid = threading.get_ident()
    undo: list[Callable[[], None]] = []
    seen: set[int] = set()
    for store in app_stores(app):
        if id(store) in seen:
            continue
        seen.add(id(store))
        _wrap_methods(store, "store", STORE_METHODS, counts, tid, undo)
        hot = getattr(store, "_hot", None)  # SQLStore: per-request reads on the driver (sessionward.hotsql)
        if hot is not None:
            _wrap_methods(hot, "hotsql", ("_run", "one"), counts, tid, undo)
        inner = getattr(store, "_inner", None)  # CachedStore: what reaches Redis
        if inner is not None and getattr(store, "healthy", False):
            _wrap_methods(inner, "backend", STORE_METHODS, counts, tid, undo)
    st = app.extensions.get(EXTENSION_KEY)
    if st is not None:
        _wrap_methods(st.users, "users", ("get",), counts, tid, undo)  # a user-row read in SQL
        users_hot = getattr(st.users, "_hot", None)
        if users_hot is not None and users_hot is not getattr(st.store, "_hot", None):
            _wrap_methods(users_hot, "users hotsql", ("_run", "one"), counts, tid, undo)
        recent = getattr(st, "recent_users", None)  # the per-process user cache in front of it, if any
        if recent is not None:
            _wrap_methods(recent, "recent_users", ("get",), counts, tid, undo)
    conn_cls = redis.connection.AbstractConnection
    original_send = conn_cls.send_packed_command

    def send(self: Any, *args: Any, **kwargs: Any) -> Any:
        if threading.get_ident() == tid:
            counts["Redis round trips"] += 1
        return original_send(self, *args, **kwargs)

    conn_cls.send_packed_command = send  # type: ignore[method-assign]
    try:
        for _ in range(requests):
            call()
    finally:
        conn_cls.send_packed_command = original_send  # type: ignore[method-assign]
        for fn in reversed(undo):
            fn()
    return {k: v / requests for k, v in sorted(counts.items())}


def format_counts(counts: dict[str, float]) -> str:
    if not counts:
        return "no store call, no Redis round trip, no user row"
    return ", ".join(f"{k} {v:g}" for k, v in counts.items())


def profile_variants(variants: list[Variant], workdir: Path, headers: dict[str, dict[str, str]], *,
                     calls: int = CALLS, public_of: str = "sw_cookie_sqlite") -> ProfileResult:
    """For each variant: its `/protected` profile and per-request counts; `/public` of `public_of` too."""
    result = ProfileResult()
    for v in variants:
        app = v.make_app(workdir)
        try:
            call = make_caller(app, "/protected", headers[v.name], expect="200")
            result.counts[v.name] = count_calls(app, call)
            result.profiles[v.name] = profile_call(call, calls)
            if v.name == public_of:
                public = make_caller(app, "/public", headers[v.name], expect="200")
                result.counts["public:" + v.name] = count_calls(app, public)
                result.profiles["public:" + v.name] = profile_call(public, calls)
        finally:
            close_app(app)
    return result


def count_variants(variants: list[Variant], workdir: Path, headers: dict[str, dict[str, str]],
                   result: ProfileResult) -> None:
    """Per-request counts only (for the anchors on Redis: their round trips beside sessionward's)."""
    for v in variants:
        app = v.make_app(workdir)
        try:
            result.counts[v.name] = count_calls(app, make_caller(app, "/protected", headers[v.name], expect="200"))
        finally:
            close_app(app)


# -- what one store read costs -----------------------------------------------------------------------

def store_call_costs(workdir: Path, result: ProfileResult, repeats: int = 2000) -> None:
    """Median us of the per-request reads (`load_by_secret`, `token_state`) on SQLStore(SQLite), RedisStore
    and CachedStore over Redis (a hit), next to the same SQLite lookup done with `sqlite3` directly and one
    Redis GET. Fills `result.cost_rows` and `result.costs`."""
    import sqlite3
    import statistics
    import time

    from sessionward.ids import hash_secret, new_public_id, new_secret
    from sessionward.stores.base import SessionRecord
    from sessionward.stores.cache import CachedStore
    from sessionward.stores.redis import RedisStore
    from sessionward.stores.sql import SQLStore

    from .apps import REDIS_PREFIX, REDIS_URL, cleanup_redis

    def med(fn: Callable[[], object]) -> float:
        for _ in range(50):
            fn()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter_ns()
            fn()
            times.append(time.perf_counter_ns() - t0)
        return statistics.median(times) / 1000

    now = time.time()
    secret = new_secret()
    record = SessionRecord(id=new_public_id(), kind="token", user_id="cost-user", created_at=now, last_seen=now,
                           auth_at=now, expires_at=now + 3600, idle_expires_at=now + 3600, epoch=0,
                           secret_hash=hash_secret(secret))
    h = record.secret_hash or ""
    path = workdir / "costs.sqlite3"
    prefix = REDIS_PREFIX + "costs:"
    sql = SQLStore.from_url(f"sqlite:///{path}")
    red = RedisStore.from_url(REDIS_URL, prefix=prefix)
    cached = CachedStore(RedisStore.from_url(REDIS_URL, prefix=prefix), redis_client=red.client,
                         channel_prefix=prefix).start()
    stores = {"SQLStore(SQLite)": sql, "RedisStore": red, "CachedStore(Redis), hit": cached}
    rows = ["store call (median us)        " + "".join(f"{name:>26s}" for name in stores)]
    try:
        for store in (sql, red):
            store.create(record, now=now)
            store.bump_epoch("cost-user")
        if not cached.wait_healthy(timeout=15.0):
            raise RuntimeError("the local cache did not become healthy")
        calls: dict[str, Callable[[Any], Callable[[], object]]] = {
            "load_by_secret": lambda s: (lambda: s.load_by_secret(h, now=now)),
            "token_state": lambda s: (lambda: s.token_state(jti="no-such-jti", user_id="cost-user",
                                                            family_id=record.id, now=now)),
        }
        for call_name, make in calls.items():
            cells = []
            for store_name, store in stores.items():
                us = med(make(store))
                result.costs[(call_name, store_name)] = us
                cells.append(f"{us:26.1f}")
            rows.append(f"{call_name:30s}" + "".join(cells))
        raw = sqlite3.connect(str(path), check_same_thread=False)
        q = "SELECT * FROM sw_sessions WHERE secret_hash = ? AND expires_at > ? AND idle_expires_at > ?"
        hb = bytes.fromhex(h)
        us = med(lambda: raw.execute(q, (hb, now, now)).fetchone())
        result.costs[("sqlite3 lookup", "SQLStore(SQLite)")] = us
        rows.append(f"{'same lookup, sqlite3 directly':30s}{us:26.1f}")
        raw.close()
        client = red.client
        us = med(lambda: client.get(prefix + "x"))
        result.costs[("Redis GET", "RedisStore")] = us
        rows.append(f"{'one Redis GET (round trip)':30s}{'':26s}{us:26.1f}")
    finally:
        cached.close()
        sql.close()
        red.close()
        cleanup_redis(prefix)
    result.cost_rows = rows


# -- the cold path against the hot one -----------------------------------------------------------------

def profile_cold(variants: list[Variant], workdir: Path, headers: dict[str, dict[str, str]], result: ProfileResult,
                 *, calls: int = CALLS) -> None:
    """For each token variant: `/protected` with `calls` distinct tokens, each sent once and for the first time
    (the verified-token cache turned off, no store answer remembered for its jti), minus the same app with its
    one hot token; stored as `cold:<name>` in `result.profiles` (rows and packages are differences, us per
    request). Every cold request must answer 200."""
    from werkzeug.test import EnvironBuilder

    from .inproc import _one, _start_response, token_cache

    for v in variants:
        if v.tokens is None:
            continue
        environs = iter([EnvironBuilder(path="/protected", headers=h, base_url="https://localhost/").get_environ()
                         for h in v.tokens(workdir, calls)])
        app = v.make_app(workdir)
        try:
            cache = token_cache(app)
            hot = _raw(make_caller(app, "/protected", headers[v.name], expect="200"), calls)
            size = cache.size if cache is not None else 0
            refused: list[str] = []
            wsgi = app.wsgi_app

            def cold_call(wsgi: Any = wsgi, environs: Iterator[Any] = environs, refused: list[str] = refused) -> None:
                _one(wsgi, next(environs))
                status = _start_response.status  # type: ignore[attr-defined]
                if not status.startswith("200"):
                    refused.append(status)

            if cache is not None:
                cache.size = 0
            try:
                cold = _raw(cold_call, calls, warm=0)
            finally:
                if cache is not None:
                    cache.size = size
            if refused:
                raise RuntimeError(f"{v.name}: {len(refused)} cold requests answered {refused[0]}")
            result.profiles["cold:" + v.name] = _difference(cold, hot)
        finally:
            close_app(app)


# -- a gunicorn worker under load ---------------------------------------------------------------------

def profile_http(variants: list[Variant], workdir: Path, headers: dict[str, dict[str, str]], result: ProfileResult,
                 *, duration: float) -> None:
    """For each variant (bare first): gunicorn serving it with its workers profiling themselves (CPU time,
    `bench.gunicorn_profile`) under `duration` seconds of load; own time per request by package (gunicorn
    included) in `result.profiles["http:<name>"]`, and the request count it is divided by."""
    import tempfile

    from .http import Server, measure

    for v in variants:
        with tempfile.TemporaryDirectory(prefix="sw-bench-prof-") as tmp:
            out = Path(tmp)
            with Server(v, workdir, profile_to=out) as server:
                server.wait_ready(headers[v.name], timeout=45.0)
                measure(server.url + "/protected", headers[v.name], duration)
            files = sorted(out.glob("*.prof"))
            if not files:
                continue
            stats = pstats.Stats(*[str(f) for f in files], stream=io.StringIO())
            requests = sum(nc for (filename, _line, func), (_cc, nc, *_rest) in stats.stats.items()  # type: ignore[attr-defined]
                           if func == "__call__" and filename.endswith("flask/app.py"))
            if requests:
                result.profiles["http:" + v.name] = _summary(_per_request(stats, int(requests)))
                result.http_requests[v.name] = int(requests)
