"""cProfile of sessionward's request paths, in-process: where the time of one authenticated request goes."""

from __future__ import annotations

import cProfile
import io
import pstats
from pathlib import Path

from .apps import Variant
from .inproc import make_caller

CALLS = 2000
TOP = 12


def _short(path: str) -> str:
    for marker in ("site-packages/", "src/", "lib/python3"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def profile_variants(variants: list[Variant], workdir: Path, headers: dict[str, dict[str, str]], *,
                     calls: int = CALLS) -> dict[str, list[str]]:
    """For each variant: the functions with the most own time (tottime) over `calls` requests, in us/request."""
    out: dict[str, list[str]] = {}
    for v in variants:
        call = make_caller(v.make_app(workdir), "/protected", headers[v.name], expect="200")
        for _ in range(200):
            call()
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(calls):
            call()
        prof.disable()
        stats = pstats.Stats(prof, stream=io.StringIO())
        rows = []
        total = 0.0
        for (filename, line, func), (_cc, nc, tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
            total += tt
            rows.append((tt, ct, nc, f"{_short(filename)}:{line}({func})"))
        rows.sort(reverse=True)
        lines = [f"total {total / calls * 1e6:7.1f} us/request under the profiler  (own us, cumulative us, calls/request)"]
        for tt, ct, nc, where in rows[:TOP]:
            lines.append(f"{tt / calls * 1e6:7.1f} {ct / calls * 1e6:7.1f} {nc / calls:5.1f}  {where}")
        out[v.name] = lines
    return out


def store_call_costs(workdir: Path, repeats: int = 2000) -> list[str]:
    """What one store call of the request path costs (median us), against the same lookup done with the
    driver directly: how much of a request is the storage layer's own overhead rather than the database."""
    import sqlite3
    import statistics
    import time

    from sessionward.ids import hash_secret, new_public_id, new_secret
    from sessionward.stores.base import SessionRecord
    from sessionward.stores.redis import RedisStore
    from sessionward.stores.sql import SQLStore

    from .apps import REDIS_PREFIX, REDIS_URL

    def med(fn: object) -> float:
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter_ns()
            fn()  # type: ignore[operator]
            times.append(time.perf_counter_ns() - t0)
        return statistics.median(times) / 1000

    now = time.time()
    secret = new_secret()
    record = SessionRecord(id=new_public_id(), kind="cookie", user_id="cost-user", created_at=now, last_seen=now,
                           auth_at=now, expires_at=now + 3600, idle_expires_at=now + 3600, epoch=0,
                           secret_hash=hash_secret(secret))
    h = record.secret_hash or ""
    path = workdir / "costs.sqlite3"
    sql = SQLStore.from_url(f"sqlite:///{path}")
    red = RedisStore.from_url(REDIS_URL, prefix=REDIS_PREFIX + "costs:")
    rows = ["store call (median us)              SQLStore(SQLite)  RedisStore"]
    try:
        for store in (sql, red):
            store.create(record, now=now)
            store.bump_epoch("cost-user")
        calls = {
            "get_by_secret": lambda s: (lambda: s.get_by_secret(h, now=now)),
            "get_epoch": lambda s: (lambda: s.get_epoch("cost-user")),
            "is_denied": lambda s: (lambda: s.is_denied("no-such-jti", now=now)),
        }
        for name, make in calls.items():
            rows.append(f"{name:36s} {med(make(sql)):10.1f} {med(make(red)):11.1f}")
        raw = sqlite3.connect(str(path), check_same_thread=False)
        q = ("SELECT * FROM sw_sessions WHERE secret_hash = ? AND expires_at > ? AND idle_expires_at > ?")
        rows.append(f"{'same lookup, sqlite3 directly':36s} {med(lambda: raw.execute(q, (h, now, now)).fetchone()):10.1f}")
        q2 = "SELECT epoch FROM sw_epochs WHERE user_id = ?"
        rows.append(f"{'epoch, sqlite3 directly':36s} {med(lambda: raw.execute(q2, ('cost-user',)).fetchone()):10.1f}")
        raw.close()
        client = red.client
        rows.append(f"{'one Redis GET (round trip)':36s} {'':10s} {med(lambda: client.get('bench:costs:x')):11.1f}")
    finally:
        sql.close()
        from .apps import cleanup_redis

        cleanup_redis(REDIS_PREFIX + "costs:")
    return rows
