"""unasync: hand-written. The per-request SQL reads for asyncio (the async twin of `sessionward/hotsql.py`,
same names; the flavours differ in kind: worker threads here, the caller's thread there).

- SQLite on disk: the sync `HotReads` (a raw sqlite3 connection per thread, answers remembered while the
  database is unchanged) runs on the store's own worker threads: one hop off the event loop per read, the
  version check and the query included. Measured faster here than aiosqlite (`python -m bench.aio_sqlite`; see
  the README's design notes); own threads, so that work queued on the loop's default executor (password hashing)
  never delays a session read. A remembered read is answered on the loop with no hop at all: each answer a
  worker returns comes with the wal-index header it is good for (`HotReads.with_header`), and the loop
  keeps it while the header, read from shared memory (`sessionward.walwatch`, no statement, no system call),
  still has those bytes; any commit, by any process, rewrites the header, and the next read hops again.
- PostgreSQL: the statement runs on the pooled psycopg 3 async connection itself (no SQLAlchemy result layer);
  the pool's reset on return ends the read transaction.
- anything else (in-memory SQLite): through the pooled connection's `exec_driver_sql`.
Driver errors that mean "cannot reach the database" become `StoreUnavailable`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from sessionward.exceptions import StoreUnavailable
from sessionward.hotsql import _MAX_REMEMBERED, Compiled, HotReads, Row, _driver_errors
from sessionward.walwatch import WalWatch

__all__ = ["AsyncHotReads", "Compiled"]

T = TypeVar("T")
A = TypeVar("A")
B = TypeVar("B")

#: worker threads per store for SQLite reads (see the README's design notes for the measurement)
WORKERS = 4

_MISSING: Any = object()  #: no answer kept on the loop
_CONNECT_ERRORS = (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.DisconnectionError, sa.exc.TimeoutError)


class AsyncHotReads:
    """Run `Compiled` reads without blocking the event loop. Raises `StoreUnavailable` when the database
    cannot be reached (or after `close`)."""

    def __init__(self, engine: AsyncEngine, *, what: str, workers: int = WORKERS) -> None:
        self._engine = engine
        self._what = what
        url = engine.url
        on_disk = engine.dialect.name == "sqlite" and url.database not in (None, "", ":memory:")
        # the sync reader only uses the engine's URL and dialect, which the async engine shares
        self._reader = HotReads(engine, what=what) if on_disk else None  # type: ignore[arg-type]
        # each worker thread has its own read-only connection and remembered answers (as each sync caller's thread)
        self._worker = ThreadPoolExecutor(workers, thread_name_prefix="sessionward-sql-reads") if on_disk else None
        self._psycopg = engine.dialect.driver == "psycopg"
        self._errors: tuple[type[BaseException], ...] = _driver_errors(engine)  # type: ignore[arg-type]
        self._connect_errors: tuple[type[BaseException], ...] = (*_CONNECT_ERRORS, *self._errors)
        # answers kept on the loop (SQLite on disk): (the wal-index header they are good for, the answers), one
        # tuple so that a header and its answers are always read and replaced together
        self._watch: WalWatch | None = None
        self._watch_asked = False
        self._kept_answers: tuple[bytes | None, dict[Hashable, Any]] = (None, {})

    def _kept(self, key: Hashable) -> Any:
        """The answer kept on the loop under `key` if nothing committed since it was read, else `_MISSING`.
        No I/O: 96 bytes of shared memory compared (a closed store's view raises, so it hops and fails)."""
        watch = self._watch
        head, answers = self._kept_answers
        value = answers.get(key, _MISSING)
        if watch is None or value is _MISSING:
            return _MISSING
        try:
            now = watch.header()
        except ValueError:  # closed with the store
            return _MISSING
        return value if now == head else _MISSING

    def _keep(self, head: bytes | None, *found: tuple[Hashable, Any]) -> None:
        """Keep what a worker read, under the header its answers are good for (None: nothing to compare later,
        keep nothing). Answers under another header than the kept ones replace them all: whichever is older
        only costs a hop, never a wrong answer, since an answer is served only while the header is its own."""
        if head is None:
            return
        kept_head, answers = self._kept_answers
        if head != kept_head or len(answers) >= _MAX_REMEMBERED:
            answers = {}
            self._kept_answers = (head, answers)
        for key, value in found:
            answers[key] = value

    async def _open_watch(self) -> None:
        """The loop's view of the header, made once on a worker (it opens a connection)."""
        reader = self._reader
        if self._watch_asked or reader is None:
            return
        self._watch_asked = True
        self._watch = await self._in_worker(reader.watch_for_another_thread)

    async def one(self, compiled: Compiled, values: dict[str, Any]) -> Row | None:
        if self._reader is not None:
            return await self._in_worker(self._reader.one, compiled, values)  # type: ignore[no-any-return]
        return await self._pooled(compiled, values)

    async def one_cached(
        self, compiled: Compiled, values: dict[str, Any], key: Hashable, convert: Callable[[Row | None], T]
    ) -> T:
        """`convert(await one(compiled, values))`, remembered under `key` while the database is unchanged (SQLite
        on disk; see `sessionward.hotsql.HotReads.one_cached`). `convert` runs on the worker thread there."""
        if self._reader is not None:
            kept = self._kept(key)
            if kept is not _MISSING:
                return kept  # type: ignore[no-any-return]
            await self._open_watch()
            reader = self._reader
            value, head = await self._in_worker(
                lambda: reader.with_header(lambda: reader.one_cached(compiled, values, key, convert))
            )
            self._keep(head, (key, value))
            return value  # type: ignore[no-any-return]
        return convert(await self._pooled(compiled, values))

    async def one_cached_in_parts(
        self,
        whole: Compiled,
        values: dict[str, Any],
        *,
        convert: Callable[[Row | None], tuple[A, B]],
        keys: tuple[Hashable, Hashable],
        second: Compiled,
        convert_second: Callable[[Row | None], B],
    ) -> tuple[A, B]:
        """See `sessionward.hotsql.HotReads.one_cached_in_parts` (SQLite on disk, on a worker thread);
        elsewhere `whole` runs every time."""
        if self._reader is not None:
            first_key, second_key = keys
            first, part = self._kept(first_key), self._kept(second_key)
            if first is not _MISSING and part is not _MISSING:
                return first, part
            reader = self._reader
            await self._open_watch()
            (first, part), head = await self._in_worker(
                lambda: reader.with_header(lambda: reader.one_cached_in_parts(
                    whole, values, convert=convert, keys=keys, second=second, convert_second=convert_second
                ))
            )
            self._keep(head, (first_key, first), (second_key, part))
            return first, part
        return convert(await self._pooled(whole, values))

    @property
    def has_once_file(self) -> bool:
        """Whether one-time keys live in the side file (SQLite on disk; `sessionward.oncefile.once_file`)."""
        return self._reader is not None

    async def use_once(self, key: str, *, until: float, now: float) -> bool:
        """`sessionward.hotsql.HotReads.use_once` on a worker thread (SQLite on disk only)."""
        reader = self._reader
        if reader is None:
            raise RuntimeError("one-time keys live in the side file only for SQLite on disk")
        return await self._in_worker(lambda: reader.use_once(key, until=until, now=now))  # type: ignore[no-any-return]

    async def purge_once(self, *, now: float) -> int:
        reader = self._reader
        if reader is None:
            raise RuntimeError("one-time keys live in the side file only for SQLite on disk")
        return await self._in_worker(lambda: reader.purge_once(now=now))  # type: ignore[no-any-return]

    async def _in_worker(self, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return await asyncio.get_running_loop().run_in_executor(self._worker, fn, *args)
        except RuntimeError as exc:  # "cannot schedule new futures after shutdown": the store is closed
            raise StoreUnavailable(f"{self._what} unavailable: closed") from exc

    async def _pooled(self, compiled: Compiled, values: dict[str, Any]) -> Row | None:
        params = compiled.params(values)
        try:
            async with self._engine.connect() as conn:
                try:
                    if self._psycopg:
                        driver = (await conn.get_raw_connection()).driver_connection
                        async with driver.cursor() as cur:  # type: ignore[union-attr]
                            await cur.execute(compiled.sql, params)
                            return await cur.fetchone()  # type: ignore[no-any-return]
                    return (await conn.exec_driver_sql(compiled.sql, params)).fetchone()
                except self._errors as exc:
                    await conn.invalidate()
                    raise StoreUnavailable(f"{self._what} unavailable: {type(exc).__name__}") from exc
        except self._connect_errors as exc:
            raise StoreUnavailable(f"{self._what} unavailable: {type(exc).__name__}") from exc

    async def close(self) -> None:
        """Stop the worker threads (after the reads already queued) and close their SQLite connections, off the
        loop. Pooled connections belong to the engine."""
        worker, reader = self._worker, self._reader
        if worker is None or reader is None:
            return
        try:
            worker.submit(int)  # refused once shut down: closed already
        except RuntimeError:
            return

        def stop() -> None:
            worker.shutdown(wait=True)
            reader.close()

        await asyncio.to_thread(stop)
