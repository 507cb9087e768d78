"""Login cost on Redis against the number of the user's live sessions: `create` (what a login or a new token
family writes) for a user who already has 10 and 10,000 live sessions. Creation prunes at most
`PRUNE_LIMIT` index members per call, so the two should cost the same (the previous layout pruned the
whole index in the script: one PTTL per existing record).

Also measured: `list_for_user` and `delete_for_user` at both sizes (they are O(sessions of the user) by
nature). Keys `bench:<run>:rs:*` in the bench database, removed afterwards.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sessionward.ids import hash_secret, new_public_id, new_secret
from sessionward.stores.base import SessionRecord

from .apps import REDIS_PREFIX, REDIS_URL
from .scale import redis_bulk

SIZES = (10, 10_000)
USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


@dataclass
class LoginScale:
    size: int
    create_us: float = 0.0
    create_p90_us: float = 0.0
    list_ms: float = 0.0
    redis_calls_per_create: float = 0.0
    notes: list[str] = field(default_factory=list)


def _record(user: str, now: float) -> SessionRecord:
    return SessionRecord(
        id=new_public_id(), kind="cookie", user_id=user, created_at=now, last_seen=now, auth_at=now,
        expires_at=now + 12 * 3600, idle_expires_at=now + 1800, epoch=0, secret_hash=hash_secret(new_secret()),
        user_agent=USER_AGENT, ip="203.0.113.7",
    )


def _calls(client: object) -> int:
    info = client.info("commandstats")  # type: ignore[attr-defined]
    return sum(int(v["calls"]) for k, v in info.items() if k.startswith("cmdstat_"))


def run_login_scale(*, logins: int, log: Callable[[str], None]) -> list[LoginScale]:
    import redis

    from sessionward.stores.redis import RedisStore

    from .apps import cleanup_redis

    prefix = REDIS_PREFIX + "rs:"
    client = redis.Redis.from_url(REDIS_URL)
    store = RedisStore(client, prefix=prefix)
    out = []
    try:
        now = time.time()
        for size in SIZES:
            for i in range(0, size, 1000):  # the same keys as `create`, pipelined
                redis_bulk(store, [_record(f"user-{size}", now) for _ in range(min(1000, size - i))], now)
        times: dict[int, list[float]] = {size: [] for size in SIZES}
        calls = {size: 0 for size in SIZES}
        for i in range(logins * len(SIZES)):  # alternating, so that drift on a busy machine hits both alike
            size = SIZES[i % len(SIZES)]
            t = time.time()
            record = _record(f"user-{size}", t)
            calls0 = _calls(client)  # server-wide: includes other clients of this Redis, if any
            t0 = time.perf_counter_ns()
            store.create(record, now=t)
            times[size].append((time.perf_counter_ns() - t0) / 1000)
            calls[size] += _calls(client) - calls0 - 1  # less the INFO itself
        for size in SIZES:
            row = LoginScale(size)
            ts = sorted(times[size])
            row.create_us, row.create_p90_us = statistics.median(ts), ts[int(len(ts) * 0.9)]
            row.redis_calls_per_create = calls[size] / logins
            t0 = time.perf_counter()
            listed = store.list_for_user(f"user-{size}", now=time.time())
            row.list_ms = (time.perf_counter() - t0) * 1000
            row.notes.append(f"{len(listed):,} listed")
            store.delete_for_user(f"user-{size}")
            log(f"  {size:,} live sessions: create {row.create_us:.0f} us (p90 {row.create_p90_us:.0f}), "
                f"{row.redis_calls_per_create:.1f} Redis calls per create (server-wide), list {row.list_ms:.0f} ms")
            out.append(row)
    finally:
        cleanup_redis(prefix)
        client.close()
    return out


def markdown(rows: list[LoginScale]) -> str:
    if not rows:
        return ""
    lines = ["## Login cost against the user's live sessions (Redis)", "",
             "| live sessions of the user | create (login) median | p90 | Redis calls per create | list_for_user |",
             "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.size:,} | {r.create_us:.0f} us | {r.create_p90_us:.0f} us | "
                     f"{r.redis_calls_per_create:.1f} | {r.list_ms:.0f} ms |")
    if len(rows) == 2 and rows[0].create_us:
        lines += ["", f"Ratio of the median login at {rows[1].size:,} to {rows[0].size:,}: "
                      f"{rows[1].create_us / rows[0].create_us:.2f}x (goal: about 1; O(1) amortized creation)."]
    return "\n".join(lines)
