# GENERATED from src/sessionward/aio/db.py by scripts/gen_sync.py: edit that file, not this one.
"""SQL plumbing shared by the SQL store, the users table and the key set: one engine per URL,
SQLite tuned for a single machine (WAL), PostgreSQL through psycopg 3, a versioned schema, and driver
errors turned into `StoreUnavailable` so that callers fail closed.

One source for both flavours: the async module (SQLAlchemy's async engine: SQLite through aiosqlite, PostgreSQL
through psycopg 3's async connections) and the sync one generated from it (sqlite3, psycopg 3). Each flavour has
its own `metadata`, so that both flavours of a module can define the same tables in one process.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import sqlalchemy as sa
from sqlalchemy import Connection, Engine, create_engine

from sessionward._sqlflavour import SQLITE_SCHEME, run_sync, sync_engine
from sessionward.exceptions import ConfigError, StoreUnavailable

#: Bump when a table changes; `ensure_schema` records it so a later release can migrate.
SCHEMA_VERSION = 1
_CREATE_ATTEMPTS = 3

metadata = sa.MetaData()

schema_version = sa.Table(
    "sw_schema_version",
    metadata,
    sa.Column("component", sa.String(64), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
)


def normalize_url(url: str) -> str:
    """Map `postgres://` and `postgresql://` to the psycopg 3 driver (sync and async alike) and `sqlite://` to
    this flavour's SQLite driver; leave URLs that name a driver alone."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    if url.startswith("sqlite://"):
        url = SQLITE_SCHEME + url[len("sqlite") :]
    return url


def make_engine(url: str, *, connect_timeout: float = 5.0) -> Engine:
    """An engine for `url`. SQLite gets WAL, a busy timeout and foreign keys; PostgreSQL a connect timeout
    and pre-ping so that a restarted server is picked up again. Raises `ConfigError` for a bad URL."""
    url = normalize_url(url)
    try:
        parsed = sa.engine.make_url(url)
    except Exception as exc:  # sqlalchemy.exc.ArgumentError and friends
        raise ConfigError("SESSIONWARD_DATABASE_URL", f"not a database URL: {exc}") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        engine = _create(
            parsed,
            connect_args={"timeout": 30, "check_same_thread": False},
            pool_pre_ping=False,
            hide_parameters=True,  # a driver error's message (and traceback) never carries client text (O5)
        )

        @sa.event.listens_for(sync_engine(engine), "connect")
        def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            if parsed.database not in (None, "", ":memory:"):
                cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    if backend == "postgresql":
        return _create(
            parsed,
            connect_args={"connect_timeout": max(1, int(connect_timeout))},
            pool_pre_ping=True,
            hide_parameters=True,
            pool_size=5,
            max_overflow=10,
            pool_timeout=connect_timeout,
        )
    raise ConfigError("SESSIONWARD_DATABASE_URL", f"unsupported database {backend!r}; use sqlite or postgresql")


def _create(url: sa.engine.URL, **options: object) -> Engine:
    try:
        return create_engine(url, **options)
    except (sa.exc.ArgumentError, sa.exc.InvalidRequestError, ImportError) as exc:  # e.g. a sync-only driver
        raise ConfigError("SESSIONWARD_DATABASE_URL", f"cannot use {url.drivername!r}: {exc}") from None


@contextlib.contextmanager
def unavailable_on_error(what: str = "database") -> Iterator[None]:
    """Turn connection-level driver errors into `StoreUnavailable` (fail closed; no traceback to clients)."""
    try:
        yield
    except (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.DisconnectionError, sa.exc.TimeoutError) as exc:
        cause = exc.orig if hasattr(exc, "orig") else exc
        raise StoreUnavailable(f"{what} unavailable: {type(cause).__name__}") from exc


@contextlib.contextmanager
def begin(engine: Engine, what: str = "database") -> Iterator[Connection]:
    """A transaction on `engine`, with driver errors mapped to `StoreUnavailable`."""
    with unavailable_on_error(what), engine.begin() as conn:
        yield conn


def ensure_schema(engine: Engine, component: str, tables: list[sa.Table]) -> None:
    """Create `tables` if missing and record `component`'s schema version. Idempotent; safe when several
    processes start at once (creation races are tolerated)."""
    with unavailable_on_error():
        for attempt in range(1, _CREATE_ATTEMPTS + 1):
            try:
                with engine.begin() as conn:
                    run_sync(conn, metadata.create_all, tables=[schema_version, *tables], checkfirst=True)
                break
            except (sa.exc.IntegrityError, sa.exc.ProgrammingError):
                if attempt == _CREATE_ATTEMPTS:
                    raise
        with engine.begin() as conn:
            row = (
                conn.execute(sa.select(schema_version.c.version).where(schema_version.c.component == component))
            ).first()
            if row is None:
                try:
                    with conn.begin_nested():
                        conn.execute(schema_version.insert().values(component=component, version=SCHEMA_VERSION))
                except sa.exc.IntegrityError:
                    pass
            elif row.version > SCHEMA_VERSION:
                raise ConfigError(
                    "SESSIONWARD_DATABASE_URL",
                    f"schema of {component!r} is version {row.version}, newer than this release ({SCHEMA_VERSION})",
                )
