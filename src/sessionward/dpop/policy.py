"""The DPoP policy of one deployment, validated once at construction (a wrong value raises `ConfigError`
naming the setting, e.g. `DPOP_MAX_AGE`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from ..exceptions import ConfigError
from ..popkeys import KEY_ALGORITHMS

__all__ = ["DEFAULT_ALGORITHMS", "DPoPMode", "DPoPPolicy"]

DPoPMode = Literal["off", "allowed", "required"]
#: ES256 first (the cheapest asymmetric verify in `cryptography`), then RFC 9864's `Ed25519` and the older
#: polymorphic `EdDSA` that most DPoP clients still send for Ed25519 keys.
DEFAULT_ALGORITHMS: tuple[str, ...] = ("ES256", "Ed25519", "EdDSA")
MIN_PROOF_BYTES, MAX_PROOF_BYTES = 1024, 16384


def _seconds(setting: str, value: object, *, lo: float, hi: float) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise ConfigError(setting, f"must be a number of seconds, got {value!r}")
    if not lo <= value <= hi:
        raise ConfigError(setting, f"must be between {lo} and {hi} seconds, got {value!r}")


@dataclass(frozen=True, slots=True)
class DPoPPolicy:
    """`mode`: `off` (no DPoP: a bound token is refused, proofs are ignored), `allowed` (a client that sends
    a proof at login gets bound tokens; plain Bearer clients keep working), `required` (every token must be
    bound). `algorithms`: the asymmetric JWS algorithms accepted in proofs (`none` and HMAC cannot be named).
    A proof's `iat` may be at most `max_age` seconds old and `future_skew` seconds ahead; its `jti` is
    remembered for `max_age` seconds. `nonce`: require a server nonce (RFC 9449 8, 9), valid `nonce_lifetime`
    seconds. `max_proof_bytes`: longer `DPoP` headers are refused before any parsing."""

    mode: DPoPMode = "allowed"
    algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS
    max_age: float = 60.0
    future_skew: float = 5.0
    nonce: bool = False
    nonce_lifetime: float = 300.0
    max_proof_bytes: int = 4096
    max_jti_chars: int = 128

    def __post_init__(self) -> None:
        if self.mode not in ("off", "allowed", "required"):
            raise ConfigError("DPOP", f"must be off, allowed or required, got {self.mode!r}")
        algs = self.algorithms
        if not isinstance(algs, tuple) or not algs:  # a str is no tuple either
            raise ConfigError("DPOP_ALGS", "must be a non-empty tuple of algorithm names")
        unknown = [alg for alg in algs if alg not in KEY_ALGORITHMS]
        if unknown:
            raise ConfigError("DPOP_ALGS", f"{unknown} not allowed; choose from {sorted(KEY_ALGORITHMS)}")
        if len(set(algs)) != len(algs):
            raise ConfigError("DPOP_ALGS", "names an algorithm twice")
        _seconds("DPOP_MAX_AGE", self.max_age, lo=1, hi=600)
        _seconds("DPOP_FUTURE_SKEW", self.future_skew, lo=0, hi=60)
        _seconds("DPOP_NONCE_LIFETIME", self.nonce_lifetime, lo=10, hi=3600)
        if not isinstance(self.nonce, bool):
            raise ConfigError("DPOP_NONCE", "must be true or false")
        mpb = self.max_proof_bytes
        if not isinstance(mpb, int) or isinstance(mpb, bool) or not MIN_PROOF_BYTES <= mpb <= MAX_PROOF_BYTES:
            raise ConfigError("DPOP_MAX_PROOF_BYTES", f"must be a whole number in {MIN_PROOF_BYTES}..{MAX_PROOF_BYTES}")
        mjc = self.max_jti_chars
        if not isinstance(mjc, int) or isinstance(mjc, bool) or not 16 <= mjc <= 512:  # noqa: PLR2004
            raise ConfigError("DPOP_MAX_JTI_CHARS", "must be a whole number between 16 and 512")

    @property
    def enabled(self) -> bool:
        return self.mode != "off"

    @property
    def algs_value(self) -> str:
        """The `algs` auth-param: the accepted algorithms, space-separated."""
        return " ".join(self.algorithms)
