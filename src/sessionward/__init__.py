"""sessionward: secure session management for Python web applications.

The core (this package, outside `sessionward.flask` and `sessionward.app`) imports no web framework.
Public names are loaded lazily, so `import sessionward` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "Clock": "clock",
    "ManualClock": "clock",
    "SystemClock": "clock",
    "SessionPolicy": "config",
    "CookiePolicy": "config",
    "ThrottlePolicy": "config",
    "CSRFProtector": "csrf",
    "Session": "sessions",
    "SessionManager": "sessions",
    "Argon2idHasher": "passwords",
    "PasswordPolicy": "passwords",
    "User": "users",
    "UserStore": "users",
    "LoginThrottle": "throttle",
    "Authenticator": "auth",
    "SessionRecord": "stores",
    "SessionStore": "stores",
    "open_store": "stores",
    "SessionwardError": "exceptions",
    "ConfigError": "exceptions",
    "StoreUnavailable": "exceptions",
    "AuthenticationError": "exceptions",
    "InvalidCredentials": "exceptions",
    "Throttled": "exceptions",
    "Overloaded": "exceptions",
    "TokenError": "exceptions",
    "RefreshTokenReused": "exceptions",
    "CSRFError": "exceptions",
    "PermissionDenied": "exceptions",
    "ValidationError": "exceptions",
    "PasswordPolicyError": "exceptions",
}

__all__ = sorted(_EXPORTS)  # noqa: PLE0605 - computed from the one table of lazy exports


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'sessionward' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
