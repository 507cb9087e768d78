"""Per-request SQL reads without SQLAlchemy's per-call overhead (the store's session reads, the user row), and
on SQLite the one per-request write that must not disturb them: one-time keys (`use_once`: DPoP proof ids, DBSC
challenges) in a side file beside the database (`sessionward.oncefile`), so that a DPoP request neither takes the
database's write lock nor changes its `data_version` (which would drop every thread's remembered answers).

Statements are built with SQLAlchemy Core once, compiled once for the engine's dialect, and run on a raw
DB-API cursor: for SQLite on a connection kept per thread (about 6 us a lookup instead of ~200 us through
a pooled SQLAlchemy connection with BEGIN/COMMIT), for PostgreSQL on a pooled raw connection returned at
once. Only reads go this way; every write keeps the transactional path in `sql.py`.
Driver errors that mean "cannot reach the database" become `StoreUnavailable`.

Hand-written for each flavour (this is the sync one; `sessionward/aio/hotsql.py` is the async twin with the same
names, which runs this module's SQLite reader on a worker thread).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Hashable, Sequence
from typing import Any, Protocol, TypeVar, cast

import sqlalchemy as sa
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.sql.compiler import SQLCompiler

from . import oncefile
from .exceptions import StoreUnavailable
from .walwatch import WalWatch

Row = Sequence[Any]
T = TypeVar("T")
A = TypeVar("A")
B = TypeVar("B")

_MAX_REMEMBERED = 10_000  # answers remembered per thread between two changes of the database

class _HasDialect(Protocol):
    """An `Engine` or an `AsyncEngine`: compiling needs only the dialect, which both share."""

    @property
    def dialect(self) -> Dialect: ...


class Compiled:
    """One statement compiled for one dialect, with its parameters in the order the driver wants."""

    def __init__(self, stmt: sa.ClauseElement, engine: _HasDialect) -> None:
        # `compile` is declared to return the base `Compiled`; a SQL expression compiles to an `SQLCompiler`
        compiled = cast(SQLCompiler, stmt.compile(dialect=engine.dialect))
        self.sql = str(compiled)
        self.positional = bool(compiled.positional)
        self.order: tuple[str, ...] = tuple(compiled.positiontup or ()) if self.positional else ()
        # literals SQLAlchemy turned into parameters (e.g. coalesce(x, 0)) keep their values
        self.defaults = {name: bp.value for bp, name in compiled.bind_names.items() if bp.value is not None}

    def params(self, values: dict[str, Any]) -> Any:
        merged = {**self.defaults, **values}
        return tuple(merged[name] for name in self.order) if self.positional else merged


class HotReads:
    """Run `Compiled` reads. Raises `StoreUnavailable` when the database cannot be reached."""

    def __init__(self, engine: Engine, *, what: str) -> None:
        self._engine = engine
        self._what = what
        self._local = threading.local()
        url = engine.url
        on_disk = engine.dialect.name == "sqlite" and url.database not in (None, "", ":memory:")
        self._sqlite_path = url.database if on_disk else None
        self._errors: tuple[type[BaseException], ...] = _driver_errors(engine)
        self._connect_errors: tuple[type[BaseException], ...] = (sa.exc.DBAPIError, sa.exc.TimeoutError, *self._errors)
        self._opened: list[sqlite3.Connection] = []  # every thread's SQLite connection, for `close`
        self._watches: list[WalWatch] = []  # every thread's view of the wal-index header, for `close`
        self._opened_lock = threading.Lock()
        # the side file's checkpoints, off the claiming threads (`sessionward.oncefile`)
        self._checkpointer = oncefile.Checkpointer(self._sqlite_path) if self._sqlite_path is not None else None
        self._claims = 0  # claims since the last checkpoint asked for (approximate under threads: only a pace)
        self._shared_watch: WalWatch | None = None  # `watch_for_another_thread`
        self._shared_watch_made = False
        self._shared_watch_lock = threading.Lock()

    def one(self, compiled: Compiled, values: dict[str, Any]) -> Row | None:
        row: Row | None = self._run(lambda cur: _execute(cur, compiled, values).fetchone())
        return row

    def one_cached(
        self, compiled: Compiled, values: dict[str, Any], key: Hashable, convert: Callable[[Row | None], T]
    ) -> T:
        """`convert(one(compiled, values))`, remembered under `key` while the database is unchanged. SQLite
        only (elsewhere this is `one`): `PRAGMA data_version` on this thread's connection changes whenever
        any other connection, in any process, commits; then this thread's remembered answers are dropped.
        The version is read before the query, so a remembered answer is never older than its version.
        The statement must not depend on the time: callers apply expiry to the answer themselves."""
        if self._sqlite_path is None:
            return convert(self.one(compiled, values))
        cache = self._remembered()
        if key in cache:
            return cache[key]  # type: ignore[no-any-return]
        value = convert(self.one(compiled, values))
        _remember(cache, key, value)
        return value

    def with_header(self, read: Callable[[], T]) -> tuple[T, bytes | None]:
        """`read()` (one of the remembered reads, on this thread), and the wal-index header this thread's
        remembered answers are good for: equal header bytes later mean nothing committed since, so the answer
        still holds (None: no header to compare, the answer may only be used now). For a caller that keeps
        answers on another thread (`AsyncHotReads`)."""
        value = read()
        return value, getattr(self._local, "head", None)

    def watch_for_another_thread(self) -> WalWatch | None:
        """A view of the wal-index header for a thread that runs no statement itself (an event loop comparing
        the header with the one `with_header` returned), on a connection of its own kept open until `close`
        (SQLite keeps the `-shm` file while a connection is open). Made once, on the calling thread (it opens
        the database); None when the header cannot be mapped (not SQLite on disk, not WAL)."""
        if self._sqlite_path is None:
            return None
        with self._shared_watch_lock:
            if not self._shared_watch_made:
                self._shared_watch, self._shared_watch_made = self._open_shared_watch(self._sqlite_path), True
            return self._shared_watch

    def _open_shared_watch(self, path: str) -> WalWatch | None:
        try:
            return self._open_reader(path)[1]
        except sqlite3.Error:
            return None

    def one_cached_in_parts(
        self,
        whole: Compiled,
        values: dict[str, Any],
        *,
        convert: Callable[[Row | None], tuple[A, B]],
        keys: tuple[Hashable, Hashable],
        second: Compiled,
        convert_second: Callable[[Row | None], B],
    ) -> tuple[A, B]:
        """An answer in two parts, each remembered under its own key as in `one_cached`: `whole` reads both
        (`convert` splits its row), `second` reads only the second part. With the first part remembered (for
        another request: the token family beside a jti not seen before) only `second` runs. Elsewhere than
        SQLite `whole` runs every time."""
        if self._sqlite_path is None:
            return convert(self.one(whole, values))
        cache = self._remembered()
        first_key, second_key = keys
        if first_key in cache:
            first = cache[first_key]
            if second_key in cache:
                return first, cache[second_key]
            part = convert_second(self.one(second, values))
        else:
            first, part = convert(self.one(whole, values))
            _remember(cache, first_key, first)
        _remember(cache, second_key, part)
        return first, part

    def _remembered(self) -> dict[Hashable, Any]:
        """This thread's remembered answers, emptied first if the database changed since they were read: the
        wal-index header unchanged since the last check says so without a statement (`sessionward.walwatch`);
        otherwise `PRAGMA data_version` decides, and the header read before it is kept for the next check."""
        local = self._local
        watch: WalWatch | None = getattr(local, "watch", None)
        if watch is None and getattr(local, "conn", None) is None:
            # this thread's first read: open its connection (and header view) before reading the header, so
            # that the answers get a header to be checked against from the start (`with_header`)
            self._run(lambda cur: None)
            watch = getattr(local, "watch", None)
        head = None
        if watch is not None:
            try:
                head = watch.header()
            except ValueError:  # closed with the store: the statement below answers StoreUnavailable
                watch = None
            else:
                cache = getattr(local, "cache", None)
                if cache is not None and head == local.head:
                    return cache  # type: ignore[no-any-return]
        version = self._run(lambda cur: cur.execute("PRAGMA data_version").fetchone()[0])
        if getattr(local, "version", None) != version or getattr(local, "cache", None) is None:
            local.cache, local.version = {}, version
        # a header read from a mapping that was replaced meanwhile (a new connection) is not kept
        local.head = head if watch is not None and getattr(local, "watch", None) is watch else None
        remembered: dict[Hashable, Any] = local.cache
        return remembered

    # -- one-time keys in the side file (SQLite on disk only) -------------------------------------------
    @property
    def has_once_file(self) -> bool:
        """Whether one-time keys live in the side file (SQLite on disk); elsewhere the store's own table."""
        return self._sqlite_path is not None

    def use_once(self, key: str, *, until: float, now: float) -> bool:
        """Record `key` as used until `until`; True only for the first use while a use is live (see the store
        Protocol). Raises `StoreUnavailable`."""
        # no RETURNING: `execute` runs the statement to its end (its autocommit ends at once), and the count
        # of changed rows says whether this call wrote the key (2 us less a claim than RETURNING + fetchall)
        changed: int = self._once_run(lambda conn: conn.execute(oncefile.USE, (key, until, now)).rowcount)
        self._claims += 1
        if self._claims >= oncefile.CHECKPOINT_EVERY and self._checkpointer is not None:
            self._claims = 0
            self._checkpointer.kick()
        return changed == 1

    def purge_once(self, *, now: float) -> int:
        """Remove the one-time keys whose use has ended; how many."""
        count: int = self._once_run(lambda conn: conn.execute(oncefile.PURGE, (now,)).rowcount)
        return count

    def _once_run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._sqlite_path is None:
            raise RuntimeError("one-time keys live in the side file only for SQLite on disk")
        conn = getattr(self._local, "once", None)
        try:
            if conn is None:
                conn = self._local.once = self._open_once()
            return fn(conn)
        except (sqlite3.Error, OSError) as exc:  # OSError: the side file cannot be made (a name too long, no rights)
            self._local.once = None
            if conn is not None:
                self._forget(conn)
            raise StoreUnavailable(f"{self._what} unavailable: {type(exc).__name__}") from exc

    def _open_once(self) -> sqlite3.Connection:
        conn = oncefile.connect(self._sqlite_path or "")
        with self._opened_lock:
            self._opened.append(conn)
        return conn

    def _run(self, fn: Callable[[Any], T]) -> T:
        if self._sqlite_path is not None:
            try:
                conn = self._sqlite()
            except sqlite3.Error as exc:  # the database cannot be opened: not authenticated, 503
                raise StoreUnavailable(f"{self._what} unavailable: {type(exc).__name__}") from exc
            try:
                cur = conn.cursor()
                try:
                    return fn(cur)
                finally:
                    cur.close()
            except sqlite3.Error as exc:
                self._local.conn = None
                self._drop_watch()
                self._forget(conn)
                raise StoreUnavailable(f"{self._what} unavailable: {type(exc).__name__}") from exc
        try:
            raw = self._engine.raw_connection()
        except self._connect_errors as exc:
            raise StoreUnavailable(f"{self._what} unavailable: {type(exc).__name__}") from exc
        try:
            raw_cur = raw.cursor()
            try:
                result = fn(raw_cur)
            finally:
                raw_cur.close()
            raw.commit()  # end the read transaction the driver opened
            return result
        except self._errors as exc:
            raw.invalidate()
            raise StoreUnavailable(f"{self._what} unavailable: {type(exc).__name__}") from exc
        finally:
            raw.close()

    def _sqlite(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            self._drop_watch()
            conn, watch = self._open_reader(self._sqlite_path)  # type: ignore[arg-type]
            self._local.conn = conn
            self._local.cache, self._local.version = None, None  # data_version numbers are per connection
            self._local.watch, self._local.head = watch, None
        return conn

    def _open_reader(self, path: str) -> tuple[sqlite3.Connection, WalWatch | None]:
        """A read-only connection to the database and its view of the wal-index header (None when it cannot be
        mapped, logged), both closed by `close`. Raises `sqlite3.Error`."""
        conn = sqlite3.connect(path, timeout=30, check_same_thread=False, isolation_level=None)
        try:
            conn.execute("PRAGMA busy_timeout=30000")
            conn.execute("PRAGMA query_only=ON")  # this connection only ever reads
        except BaseException:
            conn.close()
            raise
        watch = WalWatch.open(path, conn)
        with self._opened_lock:
            self._opened.append(conn)
            if watch is not None:
                self._watches.append(watch)
        return conn, watch

    def _drop_watch(self) -> None:
        watch = getattr(self._local, "watch", None)
        self._local.watch = self._local.head = None
        if watch is not None:
            with self._opened_lock:
                if watch in self._watches:
                    self._watches.remove(watch)
            watch.close()

    def _forget(self, conn: sqlite3.Connection) -> None:
        with self._opened_lock:
            if conn in self._opened:
                self._opened.remove(conn)
        conn.close()

    def close(self) -> None:
        """Close every thread's SQLite connection (a thread that reads afterwards gets `StoreUnavailable`).
        Pooled PostgreSQL connections belong to the engine."""
        if self._checkpointer is not None:
            self._checkpointer.close()
        with self._opened_lock:
            opened, self._opened = self._opened, []
            watches, self._watches = self._watches, []
        for conn in opened:
            conn.close()
        for watch in watches:
            watch.close()


def _remember(cache: dict[Hashable, Any], key: Hashable, value: Any) -> None:
    if len(cache) >= _MAX_REMEMBERED:
        cache.clear()
    cache[key] = value


def _execute(cur: Any, compiled: Compiled, values: dict[str, Any]) -> Any:
    cur.execute(compiled.sql, compiled.params(values))
    return cur


def _driver_errors(engine: Engine) -> tuple[type[BaseException], ...]:
    dbapi = engine.dialect.dbapi
    names = ("OperationalError", "InterfaceError")
    return tuple(getattr(dbapi, n) for n in names if dbapi is not None and hasattr(dbapi, n)) or (Exception,)
