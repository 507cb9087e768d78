"""Stores behind one Protocol. `open_store(url)` picks one by URL scheme."""

from __future__ import annotations

from typing import Any

from .base import SessionRecord, ThrottleState, TokenState
from .protocol import SessionStore

__all__ = ["SessionRecord", "SessionStore", "ThrottleState", "TokenState", "open_store", "store_options"]

REDIS_SCHEMES = ("redis", "rediss", "unix", "redis+sentinel", "redis+cluster")


def open_store(url: str, **options: object) -> SessionStore:
    """Open the store named by `url`: `sqlite:///path`, `postgresql://...`, `redis://`, `rediss://`,
    `unix://`, `redis+sentinel://`, `redis+cluster://`. Option `local_cache=True` (Redis only) wraps the
    store in a started `CachedStore` (per-request reads from memory, kept current by pub/sub).
    `publish_invalidations=True` only publishes the invalidations of its writes, caching nothing: for
    processes that write next to cached instances (the CLI); a no-op on SQL, where no cache exists.
    Raises `ConfigError` for an unknown scheme, or `local_cache` on a non-Redis URL; `MissingExtra` (naming
    `sessionward[redis]` or `sessionward[postgres]`) when the URL's driver is not installed."""
    from ..exceptions import ConfigError
    from ..extras import require

    local_cache = bool(options.pop("local_cache", False))
    publish = bool(options.pop("publish_invalidations", False))
    scheme = url.split(":", 1)[0].lower()
    if scheme.startswith("sqlite") or scheme.startswith("postgres"):
        if local_cache:
            raise ConfigError("SESSIONWARD_LOCAL_CACHE", "needs a Redis store URL (it is kept current by pub/sub)")
        if scheme.startswith("postgres"):
            require("psycopg", "postgres")
        from .sql import SQLStore

        return SQLStore.from_url(url, **options)  # type: ignore[arg-type]
    if scheme in REDIS_SCHEMES:
        require("redis", "redis")
        from .redis import RedisStore

        store = RedisStore.from_url(url, **options)  # type: ignore[arg-type]
        if not (local_cache or publish):
            return store
        from .cache import CachedStore

        cached = CachedStore(store, redis_client=store.client, channel_prefix=str(options.get("prefix", "sw:")))
        return cached.start() if local_cache else cached  # not started: never healthy, so it caches nothing
    raise ConfigError("SESSIONWARD_STORE_URL", f"unknown store URL scheme {scheme!r}; use sqlite, postgresql or redis")


def store_options(url: str, config: Any) -> dict[str, Any]:
    """`open_store` options from the `SESSIONWARD_*` settings in `config` (any mapping), as
    `Settings.from_mapping(config, unknown="ignore").store.options(url)`. Raises `ConfigError` naming the key."""
    from ..settings import Settings

    return Settings.from_mapping(config, unknown="ignore").store.options(url)
