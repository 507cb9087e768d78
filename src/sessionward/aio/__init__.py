"""sessionward for asyncio: the same sessions, tokens, throttling and stores, as coroutines.

unasync: hand-written (this package's other modules are the sources the sync modules are generated from;
see scripts/gen_sync.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sessionward.aio.stores import AsyncSessionStore, open_async_store

if TYPE_CHECKING:
    from sessionward.aio.stores.cache import AsyncCachedStore
    from sessionward.aio.stores.redis import AsyncRedisStore
    from sessionward.aio.stores.sql import AsyncSQLStore

__all__ = ["AsyncCachedStore", "AsyncRedisStore", "AsyncSQLStore", "AsyncSessionStore", "open_async_store"]

_STORES = {"AsyncSQLStore": "sql", "AsyncRedisStore": "redis", "AsyncCachedStore": "cache"}


def __getattr__(name: str) -> object:
    """The store classes, imported when first named (each pulls in its driver)."""
    if name in _STORES:
        import importlib

        return getattr(importlib.import_module(f"sessionward.aio.stores.{_STORES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
