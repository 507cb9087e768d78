"""The core objects built from `Settings`, the same way for Flask, ASGI and the CLI. Framework-free.

Every function raises `ConfigError` naming the full `SESSIONWARD_*` key (a core error such as
`TOKEN_REFRESH_KEY: ...` is renamed), `StoreUnavailable` when a database cannot be reached, and
`MissingExtra` when a URL needs a driver that is not installed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .exceptions import ConfigError
from .settings import Settings, full_key_errors

if TYPE_CHECKING:
    from .clock import Clock
    from .passwords import Argon2idHasher
    from .stores import SessionStore
    from .tokens import KeySource, TokenService
    from .users import UserStore

__all__ = ["build_token_service", "open_settings_store", "open_user_store", "require_database_driver"]


def require_database_driver(url: str) -> None:
    """`MissingExtra` naming `sessionward[postgres]` when `url` is PostgreSQL and psycopg is not installed."""
    from .extras import require

    if url.split(":", 1)[0].lower().startswith("postgres"):
        require("psycopg", "postgres")


def open_settings_store(settings: Settings, *, url: str | None = None, **extra: object) -> SessionStore:
    """`open_store` on `url` (default `SESSIONWARD_STORE_URL`) with the settings' store options (`extra` wins)."""
    from .stores import open_store

    url = url or settings.store.url
    if not url:
        raise ConfigError("SESSIONWARD_STORE_URL", "is required (sqlite:///..., postgresql://..., redis://...)")
    with full_key_errors():
        return open_store(url, **{**settings.store.options(url), **extra})


def open_user_store(settings: Settings, *, hasher: Argon2idHasher, clock: Clock) -> UserStore:
    """The users database of `SESSIONWARD_DATABASE_URL`."""
    from .db import make_engine
    from .passwords import PasswordPolicy
    from .users import UserStore

    if not settings.database_url:
        raise ConfigError("SESSIONWARD_DATABASE_URL", "is required (sqlite:///... or postgresql://...)")
    require_database_driver(settings.database_url)
    return UserStore(make_engine(settings.database_url), hasher=hasher, policy=PasswordPolicy(), clock=clock)


def build_token_service(
    settings: Settings, *, store: SessionStore, clock: Clock, keys: KeySource | None = None
) -> TokenService:
    """A `TokenService` over `store`, with signing keys from `SQLKeyRepository` on `SESSIONWARD_DATABASE_URL`
    sealed under `SESSIONWARD_KEK` (unless `keys` is given) and `SESSIONWARD_REFRESH_KEY`."""
    from .db import make_engine
    from .tokens import SQLKeyRepository, TokenService

    tokens = settings.tokens
    if tokens.refresh_key is None:
        raise ConfigError("SESSIONWARD_REFRESH_KEY", "is required for tokens (32+ random bytes)")
    with full_key_errors():
        if keys is None:
            if not settings.database_url:
                raise ConfigError("SESSIONWARD_DATABASE_URL", "is required for the signing keys")
            require_database_driver(settings.database_url)
            if tokens.kek is None:
                raise ConfigError("SESSIONWARD_KEK", "is required (32+ random bytes); sessionward never falls back "
                                  "to SECRET_KEY")
            keys = SQLKeyRepository(make_engine(settings.database_url), tokens.kek,
                                    refresh_interval=tokens.keys_refresh_interval, default_alg=tokens.algorithm)
        return TokenService(store=store, keys=keys, refresh_key=tokens.refresh_key, policy=tokens.policy,
                            clock=clock, cache_size=tokens.cache_size)
