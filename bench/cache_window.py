"""The local cache's revocation window: how long another instance keeps serving a session after it was
deleted, under load.

Two `CachedStore`s on one Redis, as two app instances: B serves a cookie session from its cache; A deletes it
(a logout); B's reader thread asks for the session in a loop until it gets "no session". The
window is the time from A's delete returning to the end of the last read on B that still returned the
session (0 when none did): how long a revoked session could still be used on another instance.
Load while measuring: `LOAD_THREADS` threads reading cached sessions on B and `LOAD_THREADS` threads writing
(update + delete + create) through A, all in this process (so they compete with B's subscriber thread for
the GIL, as request threads do in a worker). Keys `bench:<run>:cw:*`, removed afterwards.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sessionward.ids import hash_secret, new_public_id, new_secret
from sessionward.stores.base import SessionRecord

from .apps import REDIS_PREFIX, REDIS_URL

LOAD_THREADS = 4


@dataclass
class CacheWindow:
    trials: int
    load: str
    p50_ms: float
    p99_ms: float
    max_ms: float
    served_after: int  # trials in which B served the session at least once after the delete returned


def _record(user: str, now: float) -> tuple[SessionRecord, str]:
    secret = new_secret()
    return SessionRecord(
        id=new_public_id(), kind="cookie", user_id=user, created_at=now, last_seen=now, auth_at=now,
        expires_at=now + 3600, idle_expires_at=now + 1800, epoch=0, secret_hash=hash_secret(secret),
    ), hash_secret(secret)


def run_cache_window(*, trials: int, log: Callable[[str], None]) -> CacheWindow:
    from sessionward.stores import open_store

    from .apps import cleanup_redis

    prefix = REDIS_PREFIX + "cw:"
    a = open_store(REDIS_URL, prefix=prefix, local_cache=True)
    b = open_store(REDIS_URL, prefix=prefix, local_cache=True)
    stop = threading.Event()
    threads: list[threading.Thread] = []
    try:
        assert a.wait_healthy(10) and b.wait_healthy(10), "cache subscription did not come up"  # type: ignore[attr-defined]
        now = time.time()
        hot = [_record(f"load-{i}", now) for i in range(50)]
        for r, _ in hot:
            a.create(r, now=now)

        def reader() -> None:
            i = 0
            while not stop.is_set():
                b.load_by_secret(hot[i % len(hot)][1], now=time.time())
                i += 1

        def writer(k: int) -> None:
            while not stop.is_set():
                t = time.time()
                r, _ = _record(f"churn-{k}", t)
                a.create(r, now=t)
                a.update(r.id, {"last_seen": t}, now=t)
                a.delete(r.id)

        threads = [threading.Thread(target=reader, daemon=True) for _ in range(LOAD_THREADS)]
        threads += [threading.Thread(target=writer, args=(k,), daemon=True) for k in range(LOAD_THREADS)]
        for t in threads:
            t.start()
        windows: list[float] = []
        served_after = 0
        for _ in range(trials):
            t = time.time()
            record, h = _record("victim", t)
            a.create(record, now=t)
            assert b.load_by_secret(h, now=t)[0] is not None  # B has it cached now
            a.delete(record.id)  # the logout, on instance A
            done = time.perf_counter()
            last_served = done  # no read served it: a window of 0
            while b.load_by_secret(h, now=time.time())[0] is not None:
                last_served = time.perf_counter()
                if last_served - done > 5:
                    raise RuntimeError("instance B still served a deleted session after 5 s")
            windows.append((last_served - done) * 1000)
            served_after += last_served > done
        windows.sort()
        result = CacheWindow(
            trials=trials, load=f"{LOAD_THREADS} reader + {LOAD_THREADS} writer threads in the process",
            p50_ms=statistics.median(windows), p99_ms=windows[min(len(windows) - 1, int(len(windows) * 0.99))],
            max_ms=windows[-1], served_after=served_after,
        )
        log(f"  window after a delete on another instance: p50 {result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms, "
            f"max {result.max_ms:.2f} ms; served after the delete in {served_after} of {trials} trials")
        return result
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=5)
        a.close()
        b.close()
        cleanup_redis(prefix)


def markdown(w: CacheWindow | None) -> str:
    if w is None:
        return ""
    return "\n".join([
        "## Local cache: revocation window on another instance", "",
        "| trials | load | p50 | p99 | max | trials served after the delete returned |", "|---|---|---|---|---|---|",
        f"| {w.trials} | {w.load} | {w.p50_ms:.2f} ms | {w.p99_ms:.2f} ms | {w.max_ms:.2f} ms | {w.served_after} |",
    ])
