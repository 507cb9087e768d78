"""Password hashing (argon2id, ASVS 11.4.2) and the password policy (ASVS 6.2.1, 6.2.4, 6.2.8, 6.2.9).

`Argon2idHasher` wraps argon2-cffi. Its defaults are argon2's RFC 9106 low-memory profile (m=64 MiB, t=3,
p=4), stronger than OWASP's minimum (m=19 MiB, t=2, p=1); weaker parameters are refused at construction,
except through `Argon2idHasher.insecure_for_tests()`, which exists only so test suites run fast.

Hashing is bounded per process (SECURITY.md O7): at most `max_concurrent` hashes/verifications run at once
(each takes `memory_cost` KiB, 64 MiB by default), at most `max_waiting` more wait for a turn, each for at most
`max_wait` seconds; past that `Overloaded` is raised (503 with Retry-After in the Flask layer). A login storm
therefore queues or is refused, and never takes more than `max_concurrent * memory_cost` of hashing memory.

Passwords are NFKC-normalized (NIST SP 800-63B 5.1.1.2) and UTF-8 encoded (lone surrogates kept, never
dropped) before hashing; they are never truncated. `PasswordPolicy` refuses a password that is too long
rather than shortening it.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.resources
import logging
import os
import secrets
import threading
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass

import argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from .exceptions import ConfigError, Overloaded, PasswordPolicyError
from .text import text_problem

__all__ = [
    "DEFAULT_HASH_CONCURRENCY",
    "Argon2idHasher",
    "HashGate",
    "OWASP_MIN_MEMORY_COST",
    "OWASP_MIN_TIME_COST",
    "PasswordPolicy",
    "common_passwords",
]

log = logging.getLogger(__name__)

#: OWASP Password Storage Cheat Sheet minimum for argon2id: m=19 MiB (in KiB), t=2, p=1.
OWASP_MIN_MEMORY_COST = 19 * 1024
OWASP_MIN_TIME_COST = 2
#: ASVS 6.2.1 and 6.2.9: passwords of at least 8 characters must be allowed, and of at least 64.
ASVS_MIN_LENGTH = 8
ASVS_MIN_MAX_LENGTH = 64

_DEFAULT = argon2.profiles.RFC_9106_LOW_MEMORY  # argon2id, m=65536 KiB, t=3, p=4, 16-byte salt, 32-byte hash

#: Hashes at once per process by default: the number of cores, at most 4 (argon2 uses `parallelism` threads
#: each; more at once only adds memory and latency).
DEFAULT_HASH_CONCURRENCY = max(1, min(4, os.cpu_count() or 1))
#: The longest a password check may wait for a hashing slot (SESSIONWARD_HASH_WAIT), seconds.
MAX_HASH_WAIT = 60


def gate_bounds(max_concurrent: int, *, max_waiting: int | None, max_wait: float) -> tuple[int, int, float]:
    """The checked bounds of a hash gate (this module's `HashGate` and its asyncio twin in `sessionward.aio`):
    `max_waiting` defaults to 4 * `max_concurrent`. Raises `ConfigError` naming SESSIONWARD_HASH_CONCURRENCY,
    _QUEUE or _WAIT."""
    if max_waiting is None:
        max_waiting = 4 * max_concurrent if isinstance(max_concurrent, int) else 0
    for setting, value in (("SESSIONWARD_HASH_CONCURRENCY", max_concurrent),
                           ("SESSIONWARD_HASH_QUEUE", max_waiting)):
        if not isinstance(value, int) or isinstance(value, bool) or value < (1 if "CONC" in setting else 0):
            raise ConfigError(setting, f"must be a whole number >= {1 if 'CONC' in setting else 0}, got {value!r}")
    if not isinstance(max_wait, (int, float)) or isinstance(max_wait, bool) or not 0 < max_wait <= MAX_HASH_WAIT:
        raise ConfigError(
            "SESSIONWARD_HASH_WAIT", f"must be a number of seconds in (0, {MAX_HASH_WAIT}], got {max_wait!r}"
        )
    return max_concurrent, max_waiting, float(max_wait)


def overloaded(why: str, *, retry_after: int) -> Overloaded:
    """The `Overloaded` (503) a hash gate raises when it refuses, logged once."""
    log.warning("password hashing overloaded (%s): refusing with 503", why)
    return Overloaded("Too many sign-ins in progress. Please try again shortly.", retry_after=retry_after)


class HashGate:
    """A counting semaphore with a bounded queue: `max_concurrent` holders, `max_waiting` waiters, each waiting
    at most `max_wait` seconds. `slot()` raises `Overloaded` when the queue is full or the wait runs out.
    Raises `ConfigError` (naming SESSIONWARD_HASH_CONCURRENCY / _QUEUE / _WAIT) for bad bounds."""

    def __init__(self, max_concurrent: int, *, max_waiting: int | None = None, max_wait: float = 5.0) -> None:
        self.max_concurrent, self.max_waiting, self.max_wait = gate_bounds(
            max_concurrent, max_waiting=max_waiting, max_wait=max_wait
        )
        self._sem = threading.BoundedSemaphore(max_concurrent)
        self._lock = threading.Lock()
        self._waiting = 0
        self.refused = 0  #: how many callers got `Overloaded` (for tests and metrics)

    @property
    def retry_after(self) -> int:
        return max(1, round(self.max_wait))

    def _refuse(self, why: str) -> Overloaded:
        with self._lock:
            self.refused += 1
        return overloaded(why, retry_after=self.retry_after)

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        if not self._sem.acquire(blocking=False):
            with self._lock:
                full = self._waiting >= self.max_waiting
                if not full:
                    self._waiting += 1
            if full:
                raise self._refuse("queue full")
            try:
                got = self._sem.acquire(timeout=self.max_wait)
            finally:
                with self._lock:
                    self._waiting -= 1
            if not got:
                raise self._refuse("waited too long")
        try:
            yield
        finally:
            self._sem.release()


def _unverifiable(exc: Exception) -> bool:
    log.warning("password hash could not be verified: %s", type(exc).__name__)
    return False


def encode_password(password: str) -> bytes:
    """The bytes that get hashed: NFKC form, UTF-8, lone surrogates kept (so distinct inputs stay distinct
    and odd input never raises). Raises TypeError if `password` is not text."""
    if not isinstance(password, str):
        raise TypeError("password must be str")
    return unicodedata.normalize("NFKC", password).encode("utf-8", "surrogatepass")


class Argon2idHasher:
    """argon2id hashing with parameters checked once, here.

    Raises `ConfigError` (naming the setting) for parameters below the OWASP minimum. `gate` bounds how many
    hashes run at once in this process (default: `HashGate(DEFAULT_HASH_CONCURRENCY)`); `hash`, `verify` and
    `dummy_verify` raise `Overloaded` when it refuses.
    """

    def __init__(
        self,
        *,
        memory_cost: int = _DEFAULT.memory_cost,
        time_cost: int = _DEFAULT.time_cost,
        parallelism: int = _DEFAULT.parallelism,
        hash_len: int = _DEFAULT.hash_len,
        salt_len: int = _DEFAULT.salt_len,
        gate: HashGate | None = None,
    ) -> None:
        for setting, value, minimum in (
            ("PASSWORD_HASH_MEMORY_COST", memory_cost, OWASP_MIN_MEMORY_COST),
            ("PASSWORD_HASH_TIME_COST", time_cost, OWASP_MIN_TIME_COST),
            ("PASSWORD_HASH_PARALLELISM", parallelism, 1),
            ("PASSWORD_HASH_LENGTH", hash_len, 16),
            ("PASSWORD_HASH_SALT_LENGTH", salt_len, 16),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
                raise ConfigError(
                    setting, f"must be a whole number >= {minimum} (OWASP argon2id minimum), got {value!r}"
                )
        if memory_cost < 8 * parallelism:
            raise ConfigError("PASSWORD_HASH_MEMORY_COST", "must be at least 8 KiB per lane of parallelism")
        self._setup(memory_cost, time_cost, parallelism, hash_len, salt_len, gate=gate)

    @classmethod
    def insecure_for_tests(
        cls, *, memory_cost: int = 64, time_cost: int = 1, gate: HashGate | None = None
    ) -> Argon2idHasher:
        """A fast hasher with parameters far below the minimum. For test suites only, never production."""
        self = cls.__new__(cls)
        self._setup(memory_cost, time_cost, 1, 16, 16, gate=gate)
        return self

    def _setup(
        self, memory_cost: int, time_cost: int, parallelism: int, hash_len: int, salt_len: int, *,
        gate: HashGate | None = None,
    ) -> None:
        self.gate = gate or HashGate(DEFAULT_HASH_CONCURRENCY)
        try:
            self._ph = argon2.PasswordHasher(
                time_cost=time_cost,
                memory_cost=memory_cost,
                parallelism=parallelism,
                hash_len=hash_len,
                salt_len=salt_len,
                type=argon2.Type.ID,
            )
        except argon2.exceptions.UnsupportedParametersError as exc:
            raise ConfigError("PASSWORD_HASH_MEMORY_COST", str(exc)) from None
        # A hash of a random password with the current parameters: verifying against it costs what verifying
        # a real user's hash costs, so an unknown username takes as long as a wrong password (ASVS 6.3.8).
        self._dummy_hash = self._ph.hash(secrets.token_bytes(32))

    @property
    def parameters(self) -> argon2.Parameters:
        """The argon2 parameters new hashes are made with."""
        return argon2.extract_parameters(self._dummy_hash)

    def hash(self, password: str) -> str:
        """The argon2id hash (PHC string, `$argon2id$...`) of `password`. Raises TypeError for non-text."""
        encoded = encode_password(password)
        with self.gate.slot():
            return self._ph.hash(encoded)

    def verify(self, password_hash: str, password: str) -> bool:
        """True if `password` matches `password_hash`. A mismatch, or a hash that is malformed (logged),
        gives False; never raises for bad input."""
        try:
            encoded = encode_password(password)
        except TypeError as exc:
            return _unverifiable(exc)
        with self.gate.slot():
            return self.verify_ungated(password_hash, encoded)

    def verify_ungated(self, password_hash: str, encoded: bytes) -> bool:
        """`verify` of an already encoded password (`encode_password`) by a caller that holds a slot of the
        gate (the asyncio hasher's worker thread). Never raises for bad input."""
        try:
            return self._ph.verify(password_hash, encoded)
        except VerifyMismatchError:
            return False
        except (InvalidHashError, VerificationError, TypeError, ValueError) as exc:
            return _unverifiable(exc)

    def needs_rehash(self, password_hash: str) -> bool:
        """True if `password_hash` was made with other parameters than the current ones (or is unreadable)."""
        try:
            return self._ph.check_needs_rehash(password_hash)
        except (InvalidHashError, ValueError):
            return True

    def dummy_verify(self, password: str) -> None:
        """Spend the time of one `verify` with the current parameters, for a user that does not exist."""
        try:
            encoded = encode_password(password)
        except TypeError:
            encoded = b""
        with self.gate.slot():
            self.dummy_verify_ungated(encoded)

    def dummy_verify_ungated(self, encoded: bytes) -> None:
        """`dummy_verify` of an already encoded password, by a caller that holds a slot of the gate."""
        with contextlib.suppress(VerificationError, TypeError, ValueError):
            self._ph.verify(self._dummy_hash, encoded)

    def hash_ungated(self, encoded: bytes) -> str:
        """`hash` of an already encoded password, by a caller that holds a slot of the gate."""
        return self._ph.hash(encoded)


# -- the policy ------------------------------------------------------------------------------


@functools.cache
def common_passwords() -> frozenset[str]:
    """The shipped list of common passwords (lowercase), loaded once on first use.
    Lines starting with "## " are comments (real entries may start with "#")."""
    text = importlib.resources.files("sessionward").joinpath("data/common-passwords.txt").read_text("utf-8")
    return frozenset(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("## "))


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


@dataclass(frozen=True, slots=True)
class PasswordPolicy:
    """Rules for new passwords: length in characters (after NFKC) between `min_length` and `max_length`,
    never truncated; not a common password (case-insensitive); not the username.

    Raises `ConfigError` at construction for a length rule below ASVS (min >= 8, max >= 64)."""

    min_length: int = 8
    max_length: int = 128
    check_common: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.min_length, int) or self.min_length < ASVS_MIN_LENGTH:
            raise ConfigError("PASSWORD_MIN_LENGTH", "must be a whole number >= 8 (ASVS 6.2.1)")
        if not isinstance(self.max_length, int) or self.max_length < max(ASVS_MIN_MAX_LENGTH, self.min_length):
            raise ConfigError(
                "PASSWORD_MAX_LENGTH", "must be a whole number >= 64 and >= PASSWORD_MIN_LENGTH (ASVS 6.2.9)"
            )

    def check(self, password: str, *, username: str | None = None) -> None:
        """Raise `PasswordPolicyError` (field "password", message naming the rule) if `password` breaks a rule."""
        if not isinstance(password, str):
            raise PasswordPolicyError("Password must be text.", field="password")
        length = len(unicodedata.normalize("NFKC", password))
        if length < self.min_length:
            raise PasswordPolicyError(f"Password must be at least {self.min_length} characters long.", field="password")
        if length > self.max_length:
            raise PasswordPolicyError(
                f"Password must be at most {self.max_length} characters long (it is {length}); "
                "longer passwords are refused, never shortened.",
                field="password",
            )
        if not password.strip():
            raise PasswordPolicyError("Password must not be only spaces.", field="password")
        if text_problem(password, max_length=None) is not None:  # the same rule as at the edge (O5)
            raise PasswordPolicyError(
                "Password must not contain control, bidirectional-override or invalid characters.", field="password"
            )
        folded = _fold(password)
        if username is not None and isinstance(username, str) and folded == _fold(username):
            raise PasswordPolicyError("Password must not be the same as the username.", field="password")
        if self.check_common:
            common = common_passwords()
            if folded in common or folded.strip() in common or password.lower().strip() in common:
                raise PasswordPolicyError(
                    "Password is on the list of commonly used passwords; choose another.", field="password"
                )
