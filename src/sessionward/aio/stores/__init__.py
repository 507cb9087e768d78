"""Async stores behind one Protocol. `open_async_store(url)` picks one by URL scheme.

unasync: hand-written (`open_async_store` awaits what `sessionward.stores.open_store` calls; both take the same
URLs and options and raise the same `ConfigError`s).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sessionward.aio.stores.protocol import AsyncSessionStore
from sessionward.stores import REDIS_SCHEMES
from sessionward.stores.base import SessionRecord, ThrottleState, TokenState

if TYPE_CHECKING:
    from sessionward.aio.stores.cache import AsyncCachedStore
    from sessionward.aio.stores.redis import AsyncRedisStore
    from sessionward.aio.stores.sql import AsyncSQLStore

__all__ = [
    "AsyncCachedStore",
    "AsyncRedisStore",
    "AsyncSQLStore",
    "AsyncSessionStore",
    "SessionRecord",
    "ThrottleState",
    "TokenState",
    "open_async_store",
]


async def open_async_store(url: str, **options: object) -> AsyncSessionStore:
    """Open the store named by `url`: `sqlite:///path`, `postgresql://...`, `redis://`, `rediss://`, `unix://`,
    `redis+sentinel://`, `redis+cluster://`. Option `local_cache=True` (Redis only) wraps the store in a started
    `AsyncCachedStore` (call from the event loop that will use it: its subscriber is a task of that loop).
    `publish_invalidations=True` only publishes the invalidations of its writes, caching nothing; a no-op on SQL.
    Raises `ConfigError` for an unknown scheme, or `local_cache` on a non-Redis URL; `StoreUnavailable` if the
    database (or a Redis Cluster) cannot be reached. Close the store with `await store.close()`."""
    from sessionward.exceptions import ConfigError

    local_cache = bool(options.pop("local_cache", False))
    publish = bool(options.pop("publish_invalidations", False))
    scheme = url.split(":", 1)[0].lower()
    if scheme.startswith("sqlite") or scheme.startswith("postgres"):
        from sessionward.aio.stores.sql import AsyncSQLStore

        if local_cache:
            raise ConfigError("SESSIONWARD_LOCAL_CACHE", "needs a Redis store URL (it is kept current by pub/sub)")
        return await AsyncSQLStore.from_url(url, **options)  # type: ignore[arg-type]
    if scheme in REDIS_SCHEMES:
        from sessionward.aio.stores.redis import AsyncRedisStore

        store = await AsyncRedisStore.from_url(url, **options)  # type: ignore[arg-type]
        if not (local_cache or publish):
            return store
        from sessionward.aio.stores.cache import AsyncCachedStore

        cached = AsyncCachedStore(store, redis_client=store.client, channel_prefix=str(options.get("prefix", "sw:")))
        return cached.start() if local_cache else cached  # not started: never healthy, so it caches nothing
    raise ConfigError("SESSIONWARD_STORE_URL", f"unknown store URL scheme {scheme!r}; use sqlite, postgresql or redis")


_CLASSES = {"AsyncSQLStore": "sql", "AsyncRedisStore": "redis", "AsyncCachedStore": "cache"}


def __getattr__(name: str) -> object:
    """The store classes, imported when first named (`from sessionward.aio.stores import AsyncSQLStore`)."""
    if name in _CLASSES:
        import importlib

        return getattr(importlib.import_module(f"sessionward.aio.stores.{_CLASSES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
