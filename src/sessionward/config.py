"""Policies as frozen dataclasses, validated once at construction.

A wrong value raises `ConfigError` naming the setting, at start-up, never in the middle of a request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .exceptions import ConfigError

MIN_KEY_BYTES = 32  # 256 bits (RFC 8725 3.5)
MIN_DISTINCT_KEY_BYTES = 8  # fewer means a pattern or a password, not random bytes

#: Every command that can create files in an instance runs under this umask (O6): new files 0600, folders 0700.
PRIVATE_UMASK = 0o077


def _positive(setting: str, value: float) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
        raise ConfigError(setting, f"must be a positive number of seconds, got {value!r}")


def check_key(setting: str, key: bytes) -> bytes:
    """Refuse a key that is not bytes or shorter than 256 bits (a human-memorable key is refused too:
    text keys must come as bytes from `secrets`/a key file, not as a password)."""
    if not isinstance(key, (bytes, bytearray)):
        raise ConfigError(setting, "must be bytes (32 or more random bytes, e.g. secrets.token_bytes(32))")
    if len(key) < MIN_KEY_BYTES:
        raise ConfigError(setting, f"is {len(key) * 8} bits; at least {MIN_KEY_BYTES * 8} random bits are required")
    if len(set(key)) < MIN_DISTINCT_KEY_BYTES:
        raise ConfigError(
            setting, "does not look random (too few distinct bytes); generate it with secrets.token_bytes(32)"
        )
    return bytes(key)


@dataclass(frozen=True, slots=True)
class SessionPolicy:
    """Server-side session lifetimes (ASVS 7.3.1, 7.3.2) and re-authentication window (ASVS 7.5)."""

    idle_timeout: float = 30 * 60  # the lab's 30 minutes
    absolute_lifetime: float = 12 * 60 * 60
    touch_interval: float = 60  # write last_seen at most this often (bounded staleness of the idle timer)
    reauth_window: float = 10 * 60  # a "recent login" for sensitive actions

    def __post_init__(self) -> None:
        _positive("SESSION_IDLE_TIMEOUT", self.idle_timeout)
        _positive("SESSION_ABSOLUTE_LIFETIME", self.absolute_lifetime)
        _positive("SESSION_REAUTH_WINDOW", self.reauth_window)
        if not isinstance(self.touch_interval, (int, float)) or self.touch_interval < 0:
            raise ConfigError("SESSION_TOUCH_INTERVAL", "must be >= 0 seconds")
        if self.idle_timeout > self.absolute_lifetime:
            raise ConfigError("SESSION_IDLE_TIMEOUT", "must not exceed SESSION_ABSOLUTE_LIFETIME")
        if self.touch_interval >= self.idle_timeout:
            raise ConfigError("SESSION_TOUCH_INTERVAL", "must be shorter than SESSION_IDLE_TIMEOUT")


SameSite = Literal["Lax", "Strict", "None"]


@dataclass(frozen=True, slots=True)
class CookiePolicy:
    """The session cookie's attributes (ASVS 3.3.1-3.3.5). Path is always `/` and no Domain is ever set,
    as the `__Host-` prefix demands."""

    name: str = "__Host-session"
    samesite: SameSite = "Lax"
    secure: bool = True
    httponly: bool = True

    def __post_init__(self) -> None:
        if self.samesite not in ("Lax", "Strict", "None"):
            raise ConfigError("SESSION_COOKIE_SAMESITE", "must be Lax, Strict or None")
        if not self.name or not all(c.isalnum() or c in "-_" for c in self.name):
            raise ConfigError("SESSION_COOKIE_NAME", "must be letters, digits, '-' or '_'")
        if self.name.startswith("__Host-") and not self.secure:
            raise ConfigError("SESSION_COOKIE_SECURE", "a __Host- cookie must be Secure")
        if self.samesite == "None" and not self.secure:
            raise ConfigError("SESSION_COOKIE_SAMESITE", "SameSite=None requires Secure")
        if not self.httponly:
            raise ConfigError("SESSION_COOKIE_HTTPONLY", "the session cookie must be HttpOnly")


@dataclass(frozen=True, slots=True)
class ThrottlePolicy:
    """Login throttling (ASVS 6.3.1): free attempts per key, then exponential backoff, capped so that an
    attacker can never lock a victim out for longer than `max_backoff`."""

    account_free: int = 5  # failures per account before backoff starts
    address_free: int = 20  # failures per client address before backoff starts
    base_backoff: float = 2.0  # seconds for the first throttled failure, doubled each further failure
    max_backoff: float = 15 * 60
    window: float = 24 * 60 * 60  # a counter whose last failure is older than this starts again

    def __post_init__(self) -> None:
        for name, value in (("THROTTLE_ACCOUNT_FREE", self.account_free), ("THROTTLE_ADDRESS_FREE", self.address_free)):
            if not isinstance(value, int) or value < 1:
                raise ConfigError(name, "must be a whole number >= 1")
        _positive("THROTTLE_BASE_BACKOFF", self.base_backoff)
        _positive("THROTTLE_MAX_BACKOFF", self.max_backoff)
        _positive("THROTTLE_WINDOW", self.window)
