"""Stateless server-issued values with a time window: DPoP server nonces (RFC 9449 8, 9), DBSC challenges and
the short DBSC cookie. Each says "this server issued me, for this purpose and this context, at time t" and
nothing else; no store is read or written to check one.

A value is `<issued>.<random>.<mac>`: `issued` whole seconds since the epoch (decimal), `random` 12 bytes from
`secrets` (base64url; two values issued in the same second differ), `mac` HMAC-SHA256 over the purpose, the
context, `issued` and `random` (length-prefixed JSON, so no two inputs share an encoding), base64url. The
alphabet (`0-9A-Za-z-_.`) fits a DPoP nonce (`NQCHAR`), a structured-field string and a cookie value.

One key per purpose (STYLE 5): each `TimedMAC` takes its own keys, newest last; the newest signs, every key
verifies (rotation without refusing values in flight). The `purpose` is also inside the MAC, so a value made
for one purpose never passes for another even if a deployment reused a key by mistake.

A stateless value can be presented again while its window lasts: where one use must be the only use (a DBSC
challenge), the caller records it with the store's `use_once` (see `sessionward.dpop` for that operation).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Sequence

from .config import check_key
from .exceptions import ConfigError
from .popkeys import b64url_encode

__all__ = ["MAX_VALUE_CHARS", "TimedMAC", "TimedMACError"]

MAX_VALUE_CHARS = 128
_VALUE = re.compile(r"(0|[1-9][0-9]{0,11})\.([A-Za-z0-9_-]{16})\.([A-Za-z0-9_-]{43})")
_RANDOM_BYTES = 12


class TimedMACError(ValueError):
    """A value is malformed, not ours, for another purpose or context, expired or from the future.
    `reason` is one of `malformed`, `bad mac`, `expired`, `future`."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TimedMAC:
    """Issue and check stateless time-windowed values for one `purpose`. Raises `ConfigError` (naming
    `setting`) for no key, or a key shorter than 256 bits or not random-looking."""

    def __init__(self, keys: Sequence[bytes], *, purpose: str, setting: str) -> None:
        given: object = keys  # a bare key is refused, though the type says none can come
        if isinstance(given, (bytes, bytearray)) or not keys:
            raise ConfigError(setting, "must be a non-empty list of keys (newest last)")
        self._keys = tuple(check_key(setting, key) for key in keys)
        if not purpose:
            raise ConfigError(setting, "needs a purpose")
        self.purpose = purpose

    def _mac(self, key: bytes, context: str, issued: int, rand: str) -> str:
        message = json.dumps([self.purpose, context, issued, rand], separators=(",", ":")).encode()
        return b64url_encode(hmac.new(key, message, hashlib.sha256).digest())

    def issue(self, context: str, *, now: float) -> str:
        """A new value bound to `context` (e.g. a session identifier; "" for none), issued at `now`."""
        issued = int(now)
        rand = b64url_encode(secrets.token_bytes(_RANDOM_BYTES))
        return f"{issued}.{rand}.{self._mac(self._keys[-1], context, issued, rand)}"

    def verify(self, value: object, context: str, *, now: float, max_age: float, future_skew: float = 0.0) -> int:
        """The issue time of `value` if one of our keys made it for this purpose and `context`, and
        `now - max_age <= issued <= now + future_skew`. Raises `TimedMACError`."""
        if not isinstance(value, str) or len(value) > MAX_VALUE_CHARS:
            raise TimedMACError("malformed")
        match = _VALUE.fullmatch(value)
        if match is None:
            raise TimedMACError("malformed")
        issued, rand, mac = int(match[1]), match[2], match[3]
        ok = False
        for key in self._keys:  # every key, always: the time taken does not say which key matched
            ok |= hmac.compare_digest(self._mac(key, context, issued, rand), mac)
        if not ok:
            raise TimedMACError("bad mac")
        if issued > now + future_skew:
            raise TimedMACError("future")
        if now - issued > max_age:
            raise TimedMACError("expired")
        return issued
