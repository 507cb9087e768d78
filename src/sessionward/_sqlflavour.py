"""unasync: hand-written. The sync twin of `sessionward/aio/_sqlflavour.py` (same names): the few lines where
sync SQL plumbing differs in kind from async.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import Connection, Engine

#: The driver a plain `sqlite://` URL gets: the standard library's sqlite3.
SQLITE_SCHEME = "sqlite"


def sync_engine(engine: Engine) -> Engine:
    """The engine that pool and connect events are registered on."""
    return engine


def run_sync(conn: Connection, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """`fn(conn, *args, **kwargs)`."""
    return fn(conn, *args, **kwargs)


def construct_now(fn: Callable[..., Any], *args: Any) -> bool:
    """Run `fn(*args)` from a constructor, as sync constructors always did (e.g. create the tables). True: done."""
    fn(*args)
    return True
