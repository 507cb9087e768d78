"""unasync: hand-written. The per-request SQL reads for asyncio (the async twin of `sessionward/hotsql.py`,
same names; the flavours differ in kind: a worker thread here, the caller's thread there).

- SQLite on disk: the sync `HotReads` (a raw sqlite3 connection, answers remembered while `PRAGMA data_version`
  is unchanged) runs on one worker thread of this store: one hop off the event loop per read, the version check
  and the query included. Measured faster here than aiosqlite's connection thread (`bench/aio_sqlite.py`; see the
  README's design notes).
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
from sessionward.hotsql import Compiled, HotReads, Row, _driver_errors

__all__ = ["AsyncHotReads", "Compiled"]

T = TypeVar("T")

_CONNECT_ERRORS = (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.DisconnectionError, sa.exc.TimeoutError)


class AsyncHotReads:
    """Run `Compiled` reads without blocking the event loop. Raises `StoreUnavailable` when the database
    cannot be reached (or after `close`)."""

    def __init__(self, engine: AsyncEngine, *, what: str) -> None:
        self._engine = engine
        self._what = what
        url = engine.url
        on_disk = engine.dialect.name == "sqlite" and url.database not in (None, "", ":memory:")
        # the sync reader only uses the engine's URL and dialect, which the async engine shares
        self._reader = HotReads(engine, what=what) if on_disk else None  # type: ignore[arg-type]
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="sessionward-sql-reads") if on_disk else None
        self._psycopg = engine.dialect.driver == "psycopg"
        self._errors: tuple[type[BaseException], ...] = _driver_errors(engine)  # type: ignore[arg-type]

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
            return await self._in_worker(self._reader.one_cached, compiled, values, key, convert)  # type: ignore[no-any-return]
        return convert(await self._pooled(compiled, values))

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
        except (*_CONNECT_ERRORS, *self._errors) as exc:
            raise StoreUnavailable(f"{self._what} unavailable: {type(exc).__name__}") from exc

    async def close(self) -> None:
        """Close the worker thread's SQLite connection and stop the thread. Pooled connections belong to the
        engine."""
        if self._worker is not None and self._reader is not None:
            try:
                await asyncio.get_running_loop().run_in_executor(self._worker, self._reader.close)
            except RuntimeError:  # closed already
                return
            self._worker.shutdown(wait=False)
