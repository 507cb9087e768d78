"""sessionward for asyncio: the same sessions, tokens, throttling and stores, as coroutines.

unasync: hand-written (this package's other modules are the sources the sync modules are generated from;
see scripts/gen_sync.py).

Every I/O method is a coroutine; argon2 runs in worker threads (`AsyncArgon2idHasher`), so a login never holds
up the event loop. Constructors cannot await: the SQL-backed classes have an async `open(...)` (and
`from_url(...)`) that also creates their tables. Public names are loaded lazily, so `import sessionward.aio`
stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "AsyncSessionManager": "sessions",
    "Session": "sessions",
    "AsyncTokenService": "tokens.service",
    "TokenPair": "tokens.service",
    "AsyncKeySource": "tokens._source",
    "AsyncKeySetSource": "tokens._source",
    "AsyncSQLKeyRepository": "tokens.keystore",
    "AsyncAuthenticator": "auth",
    "AsyncLoginThrottle": "throttle",
    "AsyncUserStore": "users",
    "AsyncRecentUsers": "users",
    "AsyncArgon2idHasher": "passwords",
    "AsyncHashGate": "passwords",
    "AsyncSessionStore": "stores",
    "open_async_store": "stores",
    "AsyncSQLStore": "stores.sql",
    "AsyncRedisStore": "stores.redis",
    "AsyncCachedStore": "stores.cache",
}

__all__ = sorted(_EXPORTS)  # noqa: PLE0605 - computed from the one table of lazy exports


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'sessionward.aio' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
