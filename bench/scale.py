"""Store scale: N sessions (1,000,000 in full mode, 100,000 in quick mode) in SQLite and in Redis.

Measured per store: insert rate through the store API (`create`, one record at a time, on a sample) and
through the bulk path used to fill the store; `load_by_secret` latency (the cookie session's per-request read:
record and epoch) with 1k sessions and with N; bytes per session (split by table and index, or by key kind); the
time `purge_expired` takes when 10% of the sessions are dead.

Bulk paths (bench only, they mirror what `create` writes, without its per-record checks):
- SQLite: one `INSERT` executemany per batch of `SessionRecord`s turned into rows by the store's own
  `_record_to_row`, into the store's own table;
- Redis: a pipeline per batch with exactly the keys `RedisStore.create` writes (secret pointer, user index
  member through the store's own index script, compact record with its TTL), built with the store's own key
  and record helpers.
After filling, lookups go through the store API, which proves the bulk records are real ones.

Sessions are spread over users 10 to a user (the user index of the Redis store is per user). The user
agent and address are short but realistic; bytes per session grow with them.
"""

from __future__ import annotations

import random
import secrets
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sessionward.clock import SystemClock
from sessionward.ids import hash_secret, new_public_id, new_secret
from sessionward.stores.base import SessionRecord

from .apps import REDIS_PREFIX, REDIS_URL

USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
IP = "203.0.113.7"
SESSIONS_PER_USER = 10
DEAD_FRACTION = 0.10
SAMPLE = 2000
HOUR = 3600.0


@dataclass
class StoreScale:
    store: str
    n: int
    api_insert_per_s: float = 0.0
    bulk_insert_per_s: float = 0.0
    lookup_1k_us: float = 0.0
    lookup_n_us: float = 0.0
    lookup_1k_p90_us: float = 0.0
    lookup_n_p90_us: float = 0.0
    bytes_per_session: float = 0.0
    bytes_note: str = ""
    purge_s: float = 0.0
    purged: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def lookup_ratio(self) -> float:
        return self.lookup_n_us / self.lookup_1k_us if self.lookup_1k_us else float("nan")


class _Maker:
    """Makes records: index i belongs to user i // 10; every tenth is dead after `now0 + 1h`."""

    def __init__(self, now0: float) -> None:
        self.now0 = now0
        self.tag = secrets.token_hex(4)
        self.sample: dict[int, str] = {}  # index -> secret, for lookups

    def record(self, i: int, *, keep: bool = False) -> SessionRecord:
        secret = new_secret()
        if keep:
            self.sample[i] = secret
        dead = i % int(1 / DEAD_FRACTION) == 9
        end = self.now0 + (1 if dead else 12) * HOUR  # the dead ones hit their idle timeout after an hour
        return SessionRecord(
            id=new_public_id(), kind="cookie", user_id=f"user-{self.tag}-{i // SESSIONS_PER_USER}",
            created_at=self.now0, last_seen=self.now0, auth_at=self.now0, expires_at=self.now0 + 12 * HOUR,
            idle_expires_at=end,
            epoch=0, secret_hash=hash_secret(secret), user_agent=USER_AGENT, ip=IP, data={},
        )

    def batches(self, start: int, stop: int, size: int, keep: set[int]) -> Iterator[list[SessionRecord]]:
        for lo in range(start, stop, size):
            yield [self.record(i, keep=i in keep) for i in range(lo, min(stop, lo + size))]


def _lookup_latency(store: Any, maker: _Maker, indices: list[int], now: float) -> tuple[float, float]:
    times: list[float] = []
    for i in indices:
        h = hash_secret(maker.sample[i])
        t0 = time.perf_counter_ns()
        record, _epoch = store.load_by_secret(h, now=now)  # the cookie session's per-request read
        times.append((time.perf_counter_ns() - t0) / 1000)
        if record is None:
            raise RuntimeError(f"lookup of session {i} found nothing")
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.9)]


def _api_insert(store: Any, maker: _Maker, start: int, count: int, now: float) -> float:
    t0 = time.perf_counter()
    for i in range(start, start + count):
        store.create(maker.record(i), now=now)
    return count / (time.perf_counter() - t0)


def _sample_indices(n: int, rng: random.Random, live_only: bool = True) -> list[int]:
    out: list[int] = []
    while len(out) < min(SAMPLE, n // 2):
        i = rng.randrange(n)
        if not live_only or i % int(1 / DEAD_FRACTION) != 9:
            out.append(i)
    return out


def _run(name: str, store: Any, bulk: Callable[[list[SessionRecord], float], None],
         size_of: Callable[[int], tuple[float, str]], n: int, api_sample: int,
         log: Callable[[str], None]) -> StoreScale:
    result = StoreScale(name, n)
    now0 = SystemClock().now()  # the clock sessions get in production: whole milliseconds
    maker = _Maker(now0)
    rng = random.Random(7)
    first = 1000
    keep_small = set(_sample_indices(first, rng))
    keep_big = set(_sample_indices(n, rng))
    # 1k sessions through the bulk path, lookups at 1k
    for batch in maker.batches(0, first, 1000, keep_small | keep_big):
        bulk(batch, now0)
    result.lookup_1k_us, result.lookup_1k_p90_us = _lookup_latency(store, maker, sorted(keep_small), now0)
    # fill up to n (less the API sample) with the bulk path
    fill_to = n - api_sample
    t0 = time.perf_counter()
    for batch in maker.batches(first, fill_to, 10_000, keep_big):
        bulk(batch, now0)
    elapsed = time.perf_counter() - t0
    result.bulk_insert_per_s = (fill_to - first) / elapsed
    log(f"  {name}: bulk {result.bulk_insert_per_s:,.0f}/s ({fill_to - first:,} in {elapsed:.1f} s)")
    # the rest through the store API, one `create` at a time
    result.api_insert_per_s = _api_insert(store, maker, fill_to, api_sample, now0)
    big = sorted(i for i in keep_big if i < fill_to)
    result.lookup_n_us, result.lookup_n_p90_us = _lookup_latency(store, maker, big, now0)
    result.bytes_per_session, result.bytes_note = size_of(n)
    # purge: 10% of the sessions are dead two hours on
    t0 = time.perf_counter()
    result.purged = store.purge_expired(now=now0 + 2 * HOUR)
    result.purge_s = time.perf_counter() - t0
    log(
        f"  {name}: api {result.api_insert_per_s:,.0f}/s, lookup {result.lookup_1k_us:.1f} us @1k vs "
        f"{result.lookup_n_us:.1f} us @{n:,}, {result.bytes_per_session:.0f} B/session, purge {result.purged:,} "
        f"in {result.purge_s:.1f} s"
    )
    return result


def run_sqlite(workdir: Path, n: int, *, api_sample: int, log: Callable[[str], None]) -> StoreScale:
    import sqlalchemy as sa

    from sessionward.stores.sql import SQLStore, _record_to_row, sessions

    path = workdir / "scale.sqlite3"
    for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        p.unlink(missing_ok=True)
    store = SQLStore.from_url(f"sqlite:///{path}")
    engine = store.engine

    def bulk(batch: list[SessionRecord], now: float) -> None:
        with engine.begin() as conn:
            conn.execute(sessions.insert(), [_record_to_row(r) for r in batch])

    def size_of(count: int) -> tuple[float, str]:
        with engine.begin() as conn:
            conn.execute(sa.text("PRAGMA wal_checkpoint(TRUNCATE)"))
            page = conn.execute(sa.text("PRAGMA page_size")).scalar_one()
            pages = conn.execute(sa.text("PRAGMA page_count")).scalar_one()
            free = conn.execute(sa.text("PRAGMA freelist_count")).scalar_one()
            try:  # the dbstat virtual table, when this SQLite has it: bytes per table and index
                parts = conn.execute(sa.text(
                    "SELECT name, SUM(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC")).all()
            except sa.exc.OperationalError:
                parts = []
        split = ", ".join(f"{name} {size / count:.0f}" for name, size in parts if size / count >= 1)
        note = "database pages in use / sessions" + (f" (per session: {split})" if split else "")
        return (pages - free) * page / count, note

    try:
        return _run("SQLite", store, bulk, size_of, n, api_sample, log)
    finally:
        store.close()
        for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            p.unlink(missing_ok=True)


def redis_bulk(store: Any, batch: list[SessionRecord], now: float) -> None:
    """Write `batch` into a `RedisStore` in one pipeline: exactly the keys `create` writes (secret pointer, index
    member through the store's own index script, compact record), without its per-record round trips."""
    from sessionward.stores import _redis_record as fmt
    from sessionward.stores.redis import PRUNE_LIMIT, _enc, _num, _ttl_ms

    pipe = store.client.pipeline(transaction=False)
    for r in batch:
        u, m = _enc(r.user_id), _enc(r.id)
        end_ttl, rec_ttl = _ttl_ms(r.expires_at, now), _ttl_ms(r.live_until(), now)
        if r.secret_hash is not None:
            pipe.set(store._secret_ptr(r.secret_hash), f"{u} {m}", nx=True, px=end_ttl)
        store._lua_index_add(keys=[store._idx(u)], args=[_num(r.expires_at), m, end_ttl, _num(now), PRUNE_LIMIT],
                             client=pipe)
        pipe.set(store._rec(r.id), fmt.pack(r), nx=True, px=rec_ttl)
    pipe.execute()


def run_redis(n: int, *, api_sample: int, log: Callable[[str], None]) -> StoreScale:
    import redis

    from sessionward.stores import _redis_record as fmt
    from sessionward.stores.redis import RedisStore, _enc

    prefix = REDIS_PREFIX + "scale:"
    client = redis.Redis.from_url(REDIS_URL)
    store = RedisStore(client, prefix=prefix)
    used_before = int(client.info("memory")["used_memory"])

    def bulk(batch: list[SessionRecord], now: float) -> None:
        redis_bulk(store, batch, now)

    def usage(st: RedisStore, records: list[SessionRecord]) -> dict[str, float]:
        """MEMORY USAGE per session of the keys of `records` in `st` (records, secret pointers, user indexes)."""
        parts = {"record": 0.0, "secret pointer": 0.0, "user index": 0.0}
        for r in records:
            parts["record"] += int(client.memory_usage(st._rec(r.id), samples=0) or 0)
            if r.secret_hash:
                parts["secret pointer"] += int(client.memory_usage(st._secret_ptr(r.secret_hash), samples=0) or 0)
        for idx in {st._idx(_enc(r.user_id)) for r in records}:
            parts["user index"] += int(client.memory_usage(idx, samples=0) or 0)
        return {k: v / max(1, len(records)) for k, v in parts.items()}

    def size_of(count: int) -> tuple[float, str]:
        # MEMORY USAGE of every key of a sample of users, per session: unaffected by whatever else uses this
        # Redis server. Keys carry the prefix, and the bench's (`bench:<run>:scale:`) is 16 characters longer
        # than the default `sw:`: the sample is also written under a 3-character prefix and measured there.
        sample: list[SessionRecord] = []
        for idx_key in list(client.scan_iter(match=prefix + "{u:*}:ix", count=1000))[:200]:
            for m in client.zrange(idx_key, 0, -1):
                blob = client.get(store._rec(m.decode()))
                if blob is not None:
                    sample.append(fmt.unpack(m.decode(), blob))
        long_prefix = usage(store, sample)
        short = RedisStore(client, prefix=f"{secrets.token_hex(1)}:")  # as long as `sw:`
        now = SystemClock().now()
        written: list[Any] = []
        try:
            for r in sample:
                short.create(r, now=now)
                written += [short._rec(r.id), short._idx(_enc(r.user_id))]
                if r.secret_hash:
                    written.append(short._secret_ptr(r.secret_hash))
            short_prefix = usage(short, sample)
        finally:
            for i in range(0, len(written), 500):
                client.delete(*written[i : i + 500])  # exactly the keys written here
        used_after = int(client.info("memory")["used_memory"])
        delta = (used_after - used_before) / count
        split = ", ".join(f"{k} {v:.0f}" for k, v in short_prefix.items())
        mean_value = statistics.mean(len(fmt.pack(r)) for r in sample) if sample else 0
        note = (f"MEMORY USAGE of the keys of {len(sample):,} sessions, with a 3-character prefix like the default "
                f"`sw:` ({split}); {sum(long_prefix.values()):.0f} B under the bench's prefix `{prefix}`; "
                f"used_memory grew {delta:.0f} B/session; record value {mean_value:.0f} B (compact binary, user "
                f"agent {len(USER_AGENT)} characters)")
        return sum(short_prefix.values()), note

    try:
        return _run("Redis", store, bulk, size_of, n, api_sample, log)
    finally:
        from .apps import cleanup_redis

        cleanup_redis(prefix)
