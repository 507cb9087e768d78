"""`python -m bench.aio_sqlite [--n N] [--rounds R] [--concurrency C]`: how the async SQL store should read SQLite
on the per-request path (`load_by_secret`, `token_state`). Runs by hand, never in the test suite.

Variants (the same `AsyncSQLStore`, only its reader swapped):
- `sync`: the sync `SQLStore` (today's raw sqlite3 fast path on the caller's thread), the baseline;
- `worker threads (4)`: what `AsyncSQLStore` does (`sessionward/aio/hotsql.py`): the sync reader run on the store's
  own worker threads, one hop off the loop per read (the version check and query included), except that a
  remembered answer is given on the loop with no hop while the wal-index header is unchanged;
- `worker threads (4), every read hops`: the same without the answers on the loop (what it did before);
- `worker thread (1)`: the same with a single thread;
- `to_thread`: the same reader through `asyncio.to_thread` (the loop's default executor);
- `aiosqlite`: a query-only aiosqlite connection doing the same (`PRAGMA data_version`, then the query on a miss:
  one or two hops to aiosqlite's connection thread);
- `SQLAlchemy async`: the statements through the async engine (pooled aiosqlite connection, no fast path).

Two loads: `remembered` (the same session again: answered from memory while the database is unchanged, the
common case) and `fresh` (a different session each time: every read runs the query). Each is timed one read at a
time (latency: microseconds per read, and the CPU time of all threads per read, which a busy machine distorts
less) and with `--concurrency` coroutines at once (reads per second).
Prints a Markdown table; the medians of `--rounds` rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any

import aiosqlite

from sessionward.aio.hotsql import _MISSING, WORKERS, AsyncHotReads
from sessionward.aio.stores.sql import AsyncSQLStore
from sessionward.hotsql import HotReads
from sessionward.ids import hash_secret, new_public_id, new_secret
from sessionward.stores.base import SessionRecord
from sessionward.stores.sql import SQLStore

T0 = 1_800_000_000.0
REMEMBERED = 10_000  # answers a reader remembers (as sessionward.hotsql)


def _record(secret: str) -> SessionRecord:
    return SessionRecord(id=new_public_id(), kind="cookie", user_id=f"user-{secret[:6]}", created_at=T0,
                         last_seen=T0, auth_at=T0, expires_at=T0 + 3600, idle_expires_at=T0 + 3600, epoch=0,
                         secret_hash=hash_secret(secret), user_agent="Mozilla/5.0 (X11) Firefox/128.0",
                         ip="192.0.2.7", data={"csrf": "c" * 22})


class AiosqliteReads:
    """`AsyncHotReads.one_cached` over one query-only aiosqlite connection (the alternative measured)."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._conn: aiosqlite.Connection | None = None
        self._cache: dict[Hashable, Any] = {}
        self._version: Any = None

    async def one_cached(self, compiled: Any, values: dict[str, Any], key: Hashable,
                         convert: Callable[[Any], Any]) -> Any:
        if self._conn is None:
            self._conn = await aiosqlite.connect(self._path, timeout=30, isolation_level=None)
            await self._conn.execute("PRAGMA query_only=ON")
        async with self._conn.execute("PRAGMA data_version") as cur:
            version = (await cur.fetchone())[0]  # type: ignore[index]
        if version != self._version:
            self._cache, self._version = {}, version
        if key in self._cache:
            return self._cache[key]
        async with self._conn.execute(compiled.sql, compiled.params(values)) as cur:
            value = convert(await cur.fetchone())
        if len(self._cache) >= REMEMBERED:
            self._cache.clear()
        self._cache[key] = value
        return value

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()


class HopEveryRead(AsyncHotReads):
    """`AsyncHotReads` without the answers kept on the loop: every read hops to a worker thread."""

    def _kept(self, key: Hashable) -> Any:
        return _MISSING


class ToThreadReads:
    """The sync reader through `asyncio.to_thread` (the default executor's threads, each with its connection)."""

    def __init__(self, engine: Any) -> None:
        self._reader = HotReads(engine, what="bench")

    async def one_cached(self, *args: Any) -> Any:
        return await asyncio.to_thread(self._reader.one_cached, *args)

    async def close(self) -> None:
        self._reader.close()


class SQLAlchemyReads:
    """The statements through the async engine, as any other statement of the store."""

    def __init__(self, engine: Any) -> None:
        self._engine = engine

    async def one_cached(self, compiled: Any, values: dict[str, Any], key: Hashable,
                         convert: Callable[[Any], Any]) -> Any:
        async with self._engine.connect() as conn:
            result = await conn.exec_driver_sql(compiled.sql, compiled.params(values))
            return convert(result.fetchone())

    async def close(self) -> None:
        return None


async def _timed_async(store: AsyncSQLStore, hashes: list[str], concurrency: int) -> tuple[float, float, float]:
    """(microseconds per read one at a time, CPU microseconds (all threads) per read one at a time, reads per
    second with `concurrency` at once)."""
    start, cpu = time.perf_counter(), time.process_time()
    for h in hashes:
        await store.load_by_secret(h, now=T0)
    latency = (time.perf_counter() - start) / len(hashes) * 1e6
    cpu_us = (time.process_time() - cpu) / len(hashes) * 1e6
    chunks = [hashes[i::concurrency] for i in range(concurrency)]

    async def worker(chunk: list[str]) -> None:
        for h in chunk:
            await store.load_by_secret(h, now=T0)

    start = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in chunks))
    return latency, cpu_us, len(hashes) / (time.perf_counter() - start)


def _timed_sync(store: SQLStore, hashes: list[str]) -> tuple[float, float, float]:
    start, cpu = time.perf_counter(), time.process_time()
    for h in hashes:
        store.load_by_secret(h, now=T0)
    elapsed = time.perf_counter() - start
    return elapsed / len(hashes) * 1e6, (time.process_time() - cpu) / len(hashes) * 1e6, len(hashes) / elapsed


VARIANTS = ("sync", "worker threads (4)", "worker threads (4), every read hops", "worker thread (1)", "to_thread",
            "aiosqlite", "SQLAlchemy async")


async def _run_async(url: str, path: str, variant: str, loads: dict[str, list[str]], concurrency: int
                     ) -> dict[str, tuple[float, float, float]]:
    store = await AsyncSQLStore.from_url(url)
    default = store._hot
    assert WORKERS == 4, "rename the variants"  # noqa: PLR2004
    reader: Any = {
        "worker threads (4)": default,
        "worker threads (4), every read hops": HopEveryRead(store.engine, what="bench"),
        "worker thread (1)": AsyncHotReads(store.engine, what="bench", workers=1),
        "to_thread": ToThreadReads(store.engine),
        "aiosqlite": AiosqliteReads(path),
        "SQLAlchemy async": SQLAlchemyReads(store.engine),
    }[variant]
    store._hot = reader
    try:
        out = {}
        for load, hashes in loads.items():
            await _timed_async(store, hashes[:200], concurrency)  # warm up
            out[load] = await _timed_async(store, hashes, concurrency)
        return out
    finally:
        if reader is not default:
            await reader.close()
        store._hot = default
        await store.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.aio_sqlite", description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=5_000, help="reads per load and variant per round (fresh: at least "
                        f"{REMEMBERED + REMEMBERED // 5 + 1})")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="sw-bench-aio-") as tmp:
        path = str(Path(tmp) / "sw.db")
        url = f"sqlite:///{path}"
        sync = SQLStore.from_url(url)
        # fresh: more distinct sessions than a reader remembers, read in turn, so that every read queries
        secrets_ = [new_secret() for _ in range(REMEMBERED + REMEMBERED // 5)]
        with sync.engine.begin() as conn:
            from sessionward.stores.sql import _record_to_row, sessions

            conn.execute(sessions.insert(), [_record_to_row(_record(s)) for s in secrets_])
        hashes = [hash_secret(s) for s in secrets_]
        fresh = (hashes * (1 + args.n // len(hashes)))[: max(args.n, len(hashes) + 1)]
        loads = {"remembered": [hashes[0]] * args.n, "fresh": fresh}
        results: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
        for r in range(args.rounds):
            print(f"round {r + 1}/{args.rounds}", file=sys.stderr, flush=True)
            for variant in VARIANTS:
                if variant == "sync":
                    got = {load: _timed_sync(sync, h) for load, h in loads.items()}
                else:
                    got = asyncio.run(_run_async(url, path, variant, loads, args.concurrency))
                for load, value in got.items():
                    results.setdefault((variant, load), []).append(value)
        sync.close()
    print(f"SQLite per-request read (`load_by_secret`), medians of {args.rounds} rounds; "
          f"concurrent: {args.concurrency} coroutines.\n")
    print("| variant | remembered: us/read | CPU us/read | reads/s concurrent | fresh: us/read | CPU us/read | "
          "reads/s concurrent |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for variant in VARIANTS:
        cells = []
        for load in ("remembered", "fresh"):
            values = results[(variant, load)]
            cells += [f"{statistics.median(v[0] for v in values):.1f}",
                      f"{statistics.median(v[1] for v in values):.1f}",
                      f"{statistics.median(v[2] for v in values):,.0f}"]
        print(f"| {variant} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
