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
    Raises `ConfigError` for an unknown scheme, or `local_cache` on a non-Redis URL."""
    from ..exceptions import ConfigError

    local_cache = bool(options.pop("local_cache", False))
    publish = bool(options.pop("publish_invalidations", False))
    scheme = url.split(":", 1)[0].lower()
    if scheme.startswith("sqlite") or scheme.startswith("postgres"):
        from .sql import SQLStore

        if local_cache:
            raise ConfigError("SESSIONWARD_LOCAL_CACHE", "needs a Redis store URL (it is kept current by pub/sub)")
        return SQLStore.from_url(url, **options)  # type: ignore[arg-type]
    if scheme in REDIS_SCHEMES:
        from .redis import RedisStore

        store = RedisStore.from_url(url, **options)  # type: ignore[arg-type]
        if not (local_cache or publish):
            return store
        from .cache import CachedStore

        cached = CachedStore(store, redis_client=store.client, channel_prefix=str(options.get("prefix", "sw:")))
        return cached.start() if local_cache else cached  # not started: never healthy, so it caches nothing
    raise ConfigError("SESSIONWARD_STORE_URL", f"unknown store URL scheme {scheme!r}; use sqlite, postgresql or redis")


def _config_error(name: str, message: str) -> Exception:
    from ..exceptions import ConfigError

    return ConfigError(name, message)


def _flag(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value or "").strip().lower()
    if text in ("", "0", "false", "no", "off"):
        return False
    if text in ("1", "true", "yes", "on"):
        return True
    raise _config_error(name, f"must be true or false, got {value!r}")


def store_options(url: str, config: Any) -> dict[str, Any]:
    """`open_store` options from settings. On Redis every writer publishes invalidations, so instances that
    keep a local cache (`SESSIONWARD_LOCAL_CACHE`) hear of every revocation, whoever made it."""
    local_cache = _flag("SESSIONWARD_LOCAL_CACHE", config.get("SESSIONWARD_LOCAL_CACHE"))
    if str(url).split(":", 1)[0].lower() not in REDIS_SCHEMES:
        if local_cache:
            raise _config_error("SESSIONWARD_LOCAL_CACHE", "needs a Redis store URL (it is kept current by pub/sub)")
        return {}
    options: dict[str, Any] = {"local_cache": local_cache, "publish_invalidations": True}
    if config.get("SESSIONWARD_REDIS_PREFIX"):
        options["prefix"] = str(config["SESSIONWARD_REDIS_PREFIX"])
    return options
