"""The async core objects of one ASGI app (`sessionward.aio`), opened on the app's event loop: at lifespan
start-up, or at the first request when the server runs no lifespan. The settings were validated before, when
`Sessionward(app, settings)` ran (a wrong one raises `ConfigError` naming the full key)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..settings import full_key_errors

if TYPE_CHECKING:
    from .state import SessionwardState

__all__ = ["open_core"]


async def open_core(state: SessionwardState) -> None:
    """Open the store, the users (and keys) database and build the async services into `state`; objects given
    to `Sessionward(...)` are used instead. Raises `ConfigError`, `StoreUnavailable`, `MissingExtra`."""
    from ..aio import (
        AsyncArgon2idHasher,
        AsyncAuthenticator,
        AsyncLoginThrottle,
        AsyncRecentUsers,
        AsyncSessionManager,
        AsyncSQLKeyRepository,
        AsyncTokenService,
        AsyncUserStore,
        open_async_store,
    )
    from ..aio.db import make_engine
    from ..assembly import require_database_driver
    from ..passwords import Argon2idHasher, PasswordPolicy

    settings, given, clock = state.settings, state.given, state.clock
    store = given.get("store")
    if store is None:
        url = settings.store.url
        assert url  # checked by Sessionward
        with full_key_errors():
            store = await open_async_store(url, **settings.store.options(url))
    hasher: Any = given.get("hasher")
    if hasher is None or isinstance(hasher, Argon2idHasher):
        hasher = AsyncArgon2idHasher(hasher or Argon2idHasher(gate=settings.hashing.gate()))
    engine = None
    users = given.get("users")
    if users is None:
        assert settings.database_url  # checked by Sessionward
        require_database_driver(settings.database_url)
        engine = make_engine(settings.database_url)
        users = await AsyncUserStore.open(engine, hasher=hasher, policy=PasswordPolicy(), clock=clock)
    tokens = None
    if state.tokens_enabled:
        keys = given.get("token_keys")
        tokens_settings = settings.tokens
        with full_key_errors():
            if keys is None:
                assert settings.database_url  # checked by Sessionward (tokens enabled)
                require_database_driver(settings.database_url)
                keys = await AsyncSQLKeyRepository.open(
                    engine or make_engine(settings.database_url), tokens_settings.kek,
                    refresh_interval=tokens_settings.keys_refresh_interval, default_alg=tokens_settings.algorithm,
                )
            tokens = AsyncTokenService(
                store=store, keys=keys, refresh_key=tokens_settings.refresh_key, policy=tokens_settings.policy,
                clock=clock, cache_size=tokens_settings.cache_size,
            )
    if engine is not None:
        state.engines.append(engine)
    state.store, state.users, state.tokens = store, users, tokens
    state.recent_users = AsyncRecentUsers(users, clock=clock)
    state.sessions = AsyncSessionManager(store=store, policy=settings.session, clock=clock)
    if settings.dbsc is not None:
        from ..aio.device_binding import AsyncDeviceBinding

        state.dbsc = AsyncDeviceBinding(server=settings.dbsc.server(), sessions=state.sessions)
    state.authenticator = AsyncAuthenticator(users=users, hasher=hasher,
                                             throttle=AsyncLoginThrottle(store, settings.throttle, clock), clock=clock)
