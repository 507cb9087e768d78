"""Access and refresh tokens: signing keys and JWKS (`keys`, `keystore`), claims (`claims`), the service."""

from __future__ import annotations

from .claims import ACCESS_TOKEN_TYPE, Claims, TokenPolicy
from .keys import ALGORITHMS, DEFAULT_ALG, KeySet, KeySource, SigningKey
from .keystore import KeyInfo, KeyRevocation, SQLKeyRepository
from .service import TokenPair, TokenService

__all__ = [
    "ACCESS_TOKEN_TYPE",
    "ALGORITHMS",
    "Claims",
    "DEFAULT_ALG",
    "KeyInfo",
    "KeyRevocation",
    "KeySet",
    "KeySource",
    "SQLKeyRepository",
    "SigningKey",
    "TokenPair",
    "TokenPolicy",
    "TokenService",
]
