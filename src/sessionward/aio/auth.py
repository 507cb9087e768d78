"""Password checks: throttling first, then one code path whose cost and answer do not depend on whether the
username exists (ASVS 6.3.8), rehash on login when the argon2 parameters changed (ASVS 11.4.2), and a
security event for each outcome (ASVS 16).

Every place that checks a password (login on the web and the API, re-authentication, password change)
calls the authenticator's `authenticate`, so every check is throttled and logged alike (A7); `purpose` only tells
the log which it was. The attempt is counted before the password is verified (A6, see `sessionward.throttle`).

Logs name the user for known accounts; for an unknown username only a short digest is logged, since people
sometimes type their password into the username field. Passwords are never logged.

Written once, for asyncio, in src/sessionward/aio/auth.py; src/sessionward/auth.py is generated from it
(scripts/gen_sync.py). On asyncio every argon2 computation runs in a worker thread (aio/passwords.py),
so a login never holds up the other requests of its event loop.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import logging
from typing import TYPE_CHECKING, NoReturn

from sessionward import events
from sessionward.accounts import User
from sessionward.aio.passwords import AsyncArgon2idHasher
from sessionward.aio.throttle import AsyncLoginThrottle
from sessionward.clock import Clock
from sessionward.exceptions import InvalidCredentials, Throttled

if TYPE_CHECKING:
    from sessionward.aio.users import AsyncUserStore

__all__ = ["MAX_PASSWORD_INPUT", "MAX_USERNAME_INPUT", "PURPOSES", "AsyncAuthenticator"]

#: What a password check is for, as logged in its security events.
PURPOSES = frozenset({"login", "reauth", "password_change"})

#: Inputs longer than these are refused (after the same dummy work) rather than normalized and hashed.
MAX_USERNAME_INPUT = 256
MAX_PASSWORD_INPUT = 1024


def _name_digest(username: object) -> str:
    text = username if isinstance(username, str) else repr(username)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:12]


def _client(ip: str) -> str:
    """The address as logged: the parsed, normalized address, or a digest of anything else, so client text
    can never forge a log line."""
    try:
        return str(ipaddress.ip_address(ip.strip()))
    except (ValueError, AttributeError):
        return "#" + _name_digest(ip)


class AsyncAuthenticator:
    """Checks a username and password. Raises `Throttled` (429) or `InvalidCredentials` (401, one message
    for unknown user, wrong password and disabled account), or `StoreUnavailable` (503)."""

    def __init__(
        self, *, users: AsyncUserStore, hasher: AsyncArgon2idHasher, throttle: AsyncLoginThrottle, clock: Clock
    ) -> None:
        self._users = users
        self._hasher = hasher
        self._throttle = throttle
        self._clock = clock

    async def authenticate(self, username: str, password: str, *, ip: str, purpose: str = "login") -> User:
        """The user if `password` is theirs and the account is enabled. See the class for what is raised.
        `purpose` (one of `PURPOSES`) goes into the security events; raises ValueError for another."""
        if purpose not in PURPOSES:
            raise ValueError(f"unknown purpose {purpose!r}; use one of {sorted(PURPOSES)}")
        name = username if isinstance(username, str) else ""
        try:
            attempt = await self._throttle.attempt(name, ip)  # counted as a failure from here until it succeeds
        except Throttled as exc:
            events.emit(
                "login_throttled",
                level=logging.WARNING,
                username_digest=_name_digest(username),
                ip=_client(ip),
                retry_after=exc.retry_after,
                purpose=purpose,
            )
            raise

        if (
            not isinstance(username, str)
            or not isinstance(password, str)
            or len(username) > MAX_USERNAME_INPUT
            or len(password) > MAX_PASSWORD_INPUT
        ):
            await self._hasher.dummy_verify("")
            self._fail(ip, purpose, reason="malformed_input", user=None, username_given=username)

        user = await self._users.get_by_username(username)
        if user is None:
            await self._hasher.dummy_verify(password)
            self._fail(ip, purpose, reason="unknown_user", user=None, username_given=username)
        ok = await self._hasher.verify(user.password_hash, password)
        if user.disabled:
            self._fail(ip, purpose, reason="disabled", user=user, username_given=username)
        if not ok:
            self._fail(ip, purpose, reason="bad_password", user=user, username_given=username)

        if self._hasher.needs_rehash(user.password_hash):
            new_hash = await self._hasher.hash(password)
            if await self._users.update_hash(user.id, new_hash, expected_hash=user.password_hash):
                user = dataclasses.replace(user, password_hash=new_hash)
        await self._throttle.succeeded(attempt)
        events.emit("login_succeeded", user_id=user.id, username=user.username, ip=_client(ip), purpose=purpose)
        return user

    def _fail(self, ip: str, purpose: str, *, reason: str, user: User | None, username_given: object) -> NoReturn:
        """Log the failure (reason for logs only; the attempt was counted before the check) and raise the one
        `InvalidCredentials`."""
        who: dict[str, object]
        if user is not None:
            who = {"user_id": user.id, "username": user.username}
        else:
            who = {"username_digest": _name_digest(username_given)}
        events.emit("login_failed", level=logging.WARNING, reason=reason, ip=_client(ip), purpose=purpose, **who)
        raise InvalidCredentials()
