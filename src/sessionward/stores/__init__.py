"""Stores behind one Protocol. `open_store(url)` picks one by URL scheme."""

from __future__ import annotations

from .base import SessionRecord, SessionStore, ThrottleState, TokenState

__all__ = ["SessionRecord", "SessionStore", "ThrottleState", "TokenState", "open_store"]


def open_store(url: str, **options: object) -> SessionStore:
    """Open the store named by `url`: `sqlite:///path`, `postgresql://...`, `redis://`, `rediss://`,
    `unix://`, `redis+sentinel://`, `redis+cluster://`. Raises `ConfigError` for an unknown scheme."""
    from ..exceptions import ConfigError

    scheme = url.split(":", 1)[0].lower()
    if scheme.startswith("sqlite") or scheme.startswith("postgres"):
        from .sql import SQLStore

        return SQLStore.from_url(url, **options)  # type: ignore[arg-type]
    if scheme in {"redis", "rediss", "unix", "redis+sentinel", "redis+cluster"}:
        from .redis import RedisStore

        return RedisStore.from_url(url, **options)  # type: ignore[arg-type]
    raise ConfigError("SESSIONWARD_STORE_URL", f"unknown store URL scheme {scheme!r}; use sqlite, postgresql or redis")
