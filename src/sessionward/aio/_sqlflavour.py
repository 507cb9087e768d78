"""unasync: hand-written. The few lines where async SQL plumbing differs in kind from sync (its twin:
`sessionward/_sqlflavour.py`, same names). Generated sync code imports the twin through the path rename.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

#: The driver a plain `sqlite://` URL gets: SQLAlchemy's async engine needs an async one.
SQLITE_SCHEME = "sqlite+aiosqlite"


def sync_engine(engine: AsyncEngine) -> Engine:
    """The engine that pool and connect events are registered on."""
    return engine.sync_engine


async def run_sync(conn: AsyncConnection, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """`fn(sync_connection, *args, **kwargs)` (e.g. `MetaData.create_all`, which only exists sync)."""
    return await conn.run_sync(fn, *args, **kwargs)


def construct_now(fn: Callable[..., Any], *args: Any) -> bool:
    """Run `fn(*args)` from a constructor if the flavour may block there: never in async (a constructor cannot
    await; the async classes do that work in their `open`/`from_url`). False: not done."""
    del fn, args
    return False
