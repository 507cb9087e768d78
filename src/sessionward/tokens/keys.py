"""Signing keys: one algorithm pinned per key, a key set that rotates, JWKS.

A `SigningKey` carries its `kid` and the one algorithm it may ever be used with. A `KeySet` holds the
keys of one service: the newest *active* key signs, every key it still holds verifies, so a rotation logs
nobody out. A key may be created with a later `activates_at`: every instance learns it (from the shared
database, `SQLKeyRepository`) before any instance signs with it. Old keys are retired once the last token
they could have signed has expired (`retire_expired`). The shared, persisted key set is in `keystore.py`.

`KeySet.verification_key(kid)` is a plain dict lookup: a kid that is not ours is refused; a kid is never a
path, URL or query. Keys never come from a token's header (`jwk`, `jku`, `x5u`, `x5c` are refused upstream).

Retirement (T14) is computed from data: a key stops signing when the next key in order activates
(`superseded_at`), and no token it signed can still be valid once `max_token_lifetime` (access TTL + leeway)
has passed after that. A `TokenService` tells its key source that lifetime (`bind_token_lifetime`); from then
on `current(now)` leaves retired keys out by itself, with no further command.
"""

from __future__ import annotations

import itertools
import math
import re
import secrets
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from .. import events
from ..config import check_key
from ..exceptions import ConfigError
from ..ids import new_public_id

__all__ = [
    "ALGORITHMS",
    "ALGORITHM_CHOICES",
    "Algorithm",
    "DEFAULT_ALG",
    "KeySet",
    "KeySource",
    "SigningKey",
    "generate_private",
    "revoked_key_marker",
    "superseded_at",
]

Algorithm = Literal["ES256", "Ed25519", "EdDSA", "RS256", "HS256"]
#: Every algorithm sessionward signs or verifies with. Anything else (`none` in any spelling, RS384, PS256...)
#: is refused before a key is even looked up. `Ed25519` is RFC 9864's fully-specified name for EdDSA on
#: Ed25519; `EdDSA` (the polymorphic name RFC 9864 deprecates) stays available so that existing keys and
#: their tokens keep verifying.
ALGORITHMS: frozenset[str] = frozenset({"ES256", "Ed25519", "EdDSA", "RS256", "HS256"})
_OKP = frozenset({"Ed25519", "EdDSA"})
#: ES256: a name no RFC deprecates, the cheapest asymmetric verify but RS256's (measured in bench/: ES256
#: verifies faster than Ed25519 in `cryptography`), fast to sign, and small tokens (64-byte signatures).
DEFAULT_ALG: Algorithm = "ES256"
ALGORITHM_CHOICES = "ES256, Ed25519, EdDSA, RS256 or HS256"
MIN_RSA_BITS = 2048

PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | bytes

_KID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
# Public JWK members per key type: anything else (d, p, q, dp, dq, qi, k, ...) never leaves the service.
_PUBLIC_JWK_MEMBERS = {"OKP": ("kty", "crv", "x"), "EC": ("kty", "crv", "x", "y"), "RSA": ("kty", "n", "e")}


def revoked_key_marker(kid: str) -> str:
    """The denylist entry that marks a revoked signing key (see `TokenService.revoke_key`). Never a token's
    `jti`: those are public ids without a colon."""
    return f"kid:{kid}"


def superseded_at(ordered: Sequence[SigningKey]) -> dict[str, float]:
    """When each key of `ordered` (oldest first) stopped, or will stop, signing: when the next one activates.
    The newest key is not in it."""
    return {older.kid: newer.activates_at for older, newer in itertools.pairwise(ordered)}


def generate_private(alg: str) -> PrivateKey:
    """Fresh key material for `alg`. Raises `ConfigError` for an algorithm we do not offer."""
    if alg in _OKP:
        return ed25519.Ed25519PrivateKey.generate()
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if alg == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=MIN_RSA_BITS)
    if alg == "HS256":
        return secrets.token_bytes(32)
    raise ConfigError("TOKEN_ALGORITHM", f"unsupported algorithm {alg!r}; use {ALGORITHM_CHOICES}")


def _check_material(kid: str, alg: str, private: object) -> None:
    setting = "TOKEN_SIGNING_KEY"
    if alg not in ALGORITHMS:
        raise ConfigError("TOKEN_ALGORITHM", f"unsupported algorithm {alg!r}; use {ALGORITHM_CHOICES}")
    if not isinstance(kid, str) or _KID_RE.fullmatch(kid) is None:
        raise ConfigError(setting, "kid must be 1-64 characters of A-Z a-z 0-9 _ -")
    if alg == "HS256":
        check_key(setting, private)  # type: ignore[arg-type]  # >= 256 bits, random-looking, bytes
    elif alg in _OKP:
        if not isinstance(private, ed25519.Ed25519PrivateKey):
            raise ConfigError(setting, f"an {alg} key must be an Ed25519 private key")
    elif alg == "ES256":
        if not isinstance(private, ec.EllipticCurvePrivateKey) or not isinstance(private.curve, ec.SECP256R1):
            raise ConfigError(setting, "an ES256 key must be a P-256 private key")
    elif alg == "RS256":
        if not isinstance(private, rsa.RSAPrivateKey):
            raise ConfigError(setting, "an RS256 key must be an RSA private key")
        if private.key_size < MIN_RSA_BITS:
            raise ConfigError(setting, f"an RS256 key must have at least {MIN_RSA_BITS} bits, got {private.key_size}")


@dataclass(frozen=True, slots=True)
class SigningKey:
    """One key with its id and its one algorithm. Raises `ConfigError` when the material does not fit `alg`
    (wrong type or curve, RSA < 2048 bits, HMAC key < 256 bits or not random-looking)."""

    kid: str
    alg: Algorithm
    private: PrivateKey = field(repr=False)
    created_at: float = 0.0
    activates_at: float = 0.0  #: may sign from then on (a later time lets every instance learn it first)
    serial: int = 0  #: order among keys activating at the same instant: the higher one is newer

    def __post_init__(self) -> None:
        _check_material(self.kid, self.alg, self.private)
        if self.alg == "HS256":
            object.__setattr__(self, "private", bytes(self.private))  # type: ignore[arg-type]

    @classmethod
    def generate(
        cls, alg: str = DEFAULT_ALG, *, now: float, activates_at: float | None = None, serial: int = 0
    ) -> SigningKey:
        """A new key with a random kid. Raises `ConfigError` for an unsupported algorithm."""
        return cls(
            kid=new_public_id(),
            alg=alg,  # type: ignore[arg-type]
            private=generate_private(alg),
            created_at=now,
            activates_at=now if activates_at is None else activates_at,
            serial=serial,
        )

    @property
    def symmetric(self) -> bool:
        return self.alg == "HS256"

    def verifying_key(self) -> Any:
        """What PyJWT verifies with: the public key object, or the HMAC secret for HS256."""
        if isinstance(self.private, bytes):
            return self.private
        return self.private.public_key()

    def public_jwk(self) -> dict[str, str] | None:
        """The public key as a JWK (RFC 7517) with `kid`, `alg` and `use`; None for an HMAC key."""
        pub = self.verifying_key()
        if self.alg in _OKP:
            raw = OKPAlgorithm.to_jwk(pub, as_dict=True)
        elif self.alg == "ES256":
            raw = ECAlgorithm.to_jwk(pub, as_dict=True)
        elif self.alg == "RS256":
            raw = RSAAlgorithm.to_jwk(pub, as_dict=True)
        else:
            return None
        kty = str(raw["kty"])
        jwk = {name: str(raw[name]) for name in _PUBLIC_JWK_MEMBERS[kty]}
        jwk.update(kid=self.kid, alg=self.alg, use="sig")
        return jwk


class KeySource(Protocol):
    """Anything that yields the current key set: a `KeySet` itself, or a `SQLKeyRepository`."""

    def current(self, now: float) -> KeySet: ...

    def bind_token_lifetime(self, seconds: float) -> None:
        """From now on leave out keys superseded more than `seconds` ago (the longest any token lives)."""
        ...


class KeySet:
    """The keys of one service. Thread-safe; `version` grows with every change (caches watch it).

    - signing: the newest key whose `activates_at` has come (`signing_key`);
    - verification: every key held, including ones not yet active (`verification_key`);
    - `rotate` adds a key, `retire_expired` drops keys no live token can be signed with; once a token lifetime
      is bound (`bind_token_lifetime`), `current(now)` does that by itself.
    """

    def __init__(self, keys: Iterable[SigningKey] = (), *, version: int = 0, read_only: bool = False) -> None:
        self._lock = threading.RLock()
        self._read_only = read_only
        self._by_kid: dict[str, SigningKey] = {}
        for key in keys:
            if key.kid in self._by_kid:
                raise ConfigError("TOKEN_SIGNING_KEY", f"duplicate kid {key.kid!r}")
            self._by_kid[key.kid] = key
        self.version = version
        self._order: tuple[SigningKey, ...] | None = None
        self._signing: tuple[str | None, float, float] = (None, math.inf, -math.inf)  # see `signing_kid`
        self.token_lifetime: float | None = None
        self._next_retirement = math.inf  # when `current` must drop a key next (inf: never, or not bound)

    @classmethod
    def generate(cls, alg: str = DEFAULT_ALG, *, now: float) -> KeySet:
        """A key set with one fresh, immediately active key."""
        return cls([SigningKey.generate(alg, now=now)])

    def current(self, now: float) -> KeySet:
        """This set, without the keys whose tokens have all expired (once a token lifetime is bound)."""
        if now > self._next_retirement:
            with self._lock:
                lifetime = self.token_lifetime
                if lifetime is not None and now > self._next_retirement:
                    self.retire_expired(now=now, max_token_lifetime=lifetime)
                    self._next_retirement = self.next_retirement(max_token_lifetime=lifetime)
        return self

    def bind_token_lifetime(self, seconds: float) -> None:
        """Retire keys by themselves `seconds` after they stopped signing (the longest of the lifetimes bound,
        if several services share this set). Read-only sets (from `SQLKeyRepository`) are retired by it."""
        if self._read_only:
            return
        with self._lock:
            self.token_lifetime = max(seconds, self.token_lifetime or 0.0)
            self._next_retirement = -math.inf  # work it out on the next `current`

    def next_retirement(self, *, max_token_lifetime: float) -> float:
        """The next instant after which one more key is retired (inf if none will be)."""
        return min((t + max_token_lifetime for t in superseded_at(self.keys).values()), default=math.inf)

    @property
    def keys(self) -> tuple[SigningKey, ...]:
        """Every key, oldest first (by `activates_at`, then `serial`, then kid: the same order everywhere)."""
        order = self._order
        if order is None:
            with self._lock:
                order = self._order = tuple(
                    sorted(self._by_kid.values(), key=lambda k: (k.activates_at, k.serial, k.kid))
                )
        return order

    def __len__(self) -> int:
        return len(self._by_kid)

    def signing_key(self, now: float) -> SigningKey:
        """The key to sign with now. Raises `ConfigError` if no key is active yet."""
        for key in reversed(self.keys):
            if key.activates_at <= now:
                return key
        raise ConfigError("TOKEN_SIGNING_KEY", "no active signing key; generate or rotate one")

    def signing_kid(self, now: float) -> str | None:
        """The kid `signing_key(now)` would give, or None; never raises. Per-request cheap: the answer is kept
        with the span of time it holds for (until the next key activates)."""
        kid, start, end = self._signing
        if start <= now < end:
            return kid
        order = self.keys
        kid, start, end = None, -math.inf, (order[0].activates_at if order else math.inf)
        for i, key in enumerate(order):
            if key.activates_at <= now:
                kid, start = key.kid, key.activates_at
                end = order[i + 1].activates_at if i + 1 < len(order) else math.inf
        self._signing = (kid, start, end)
        return kid

    def without(self, kids: Iterable[str], *, version: int | None = None) -> KeySet:
        """A read-only copy of this set without `kids`, with `version` (default: this set's)."""
        drop = set(kids)
        return KeySet([k for k in self.keys if k.kid not in drop], version=self.version if version is None else version,
                      read_only=True)

    def verification_key(self, kid: object) -> SigningKey | None:
        """The key with exactly this kid, or None. A plain dict lookup: no path, URL or query, ever."""
        if not isinstance(kid, str):
            return None
        return self._by_kid.get(kid)

    def add(self, key: SigningKey) -> None:
        """Add a key (e.g. one loaded or made elsewhere). Raises `ConfigError` for a duplicate kid."""
        self._check_writable()
        with self._lock:
            if key.kid in self._by_kid:
                raise ConfigError("TOKEN_SIGNING_KEY", f"duplicate kid {key.kid!r}")
            self._by_kid[key.kid] = key
            self.version += 1
            self._order, self._signing = None, (None, math.inf, -math.inf)
            if self.token_lifetime is not None:
                self._next_retirement = -math.inf

    def _check_writable(self) -> None:
        if self._read_only:
            # A key that only this process knows would sign tokens the other instances cannot verify.
            raise ConfigError(
                "TOKEN_SIGNING_KEY", "this key set comes from SQLKeyRepository; rotate and retire keys through it"
            )

    def rotate(self, *, now: float, alg: str | None = None, activate_after: float = 0.0) -> SigningKey:
        """Make a new key (same algorithm as the current one unless `alg` is given) that signs from
        `now + activate_after` on; older keys keep verifying. Raises `ConfigError` for a bad algorithm."""
        self._check_writable()
        if alg is None:
            alg = self.signing_key(now).alg if self._by_kid else DEFAULT_ALG
        serial = max((k.serial for k in self._by_kid.values()), default=0) + 1
        key = SigningKey.generate(alg, now=now, activates_at=now + activate_after, serial=serial)
        self.add(key)
        events.emit("key_rotated", new_kid=key.kid, alg=key.alg)
        return key

    def expired_kids(self, *, now: float, max_token_lifetime: float) -> list[str]:
        """Kids of keys superseded more than `max_token_lifetime` ago: no live token can carry them.
        The active key and keys not yet active are never among them."""
        stops = superseded_at(self.keys)
        return [kid for kid, until in stops.items() if until <= now and until + max_token_lifetime < now]

    def retire_expired(self, *, now: float, max_token_lifetime: float) -> list[str]:
        """Drop keys that no live token can have been signed with; returns their kids."""
        self._check_writable()
        gone = self.expired_kids(now=now, max_token_lifetime=max_token_lifetime)
        if gone:
            with self._lock:
                for kid in gone:
                    self._by_kid.pop(kid, None)
                self.version += 1
                self._order, self._signing = None, (None, math.inf, -math.inf)
        return gone

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """The public keys as a JWK Set: never an HMAC key, never a private member."""
        return {"keys": [jwk for k in self.keys if (jwk := k.public_jwk()) is not None]}
