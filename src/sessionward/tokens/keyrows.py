"""What the shared key set's rows mean, shared by both flavours of the SQL key repository
(`sessionward.tokens.keystore` and its asyncio source): the sealing of private keys under the key-encryption
key, and what key revocation and `keys list` report. The tables themselves are defined by each flavour, on its
own metadata (see `sessionward.aio.db`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sessionward.config import check_key
from sessionward.exceptions import ConfigError
from sessionward.tokens.keys import PrivateKey, SigningKey

__all__ = ["KEK_SETTING", "KeyInfo", "KeyRevocation", "KeySealer"]


KEK_SETTING = "SESSIONWARD_KEY_ENCRYPTION_KEY"


@dataclass(frozen=True, slots=True)
class KeyRevocation:
    """A revoked key: it signed the tokens issued from `activates_at` until `superseded_at` (None: never)."""

    kid: str
    alg: str
    activates_at: float
    superseded_at: float | None
    revoked_at: float


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """One line of `keys list`: status is signing, pending, verifying, retired or revoked; `until` is when a
    verifying key retires (None when no token lifetime is bound), when a retired key did, or when a revoked key
    was revoked."""

    kid: str
    alg: str
    status: str
    created_at: float
    activates_at: float
    until: float | None


_NONCE_BYTES = 12
_KEK_BYTES = 32  # AES-256


def _aad(kid: str, alg: str) -> bytes:
    # The kid and the algorithm are bound to the ciphertext: a row whose kid or alg was edited fails to open.
    return f"sessionward-signing-key|{kid}|{alg}".encode("ascii")


class KeySealer:
    """Seals private keys with AES-256-GCM (random nonce, kid and alg as associated data) under `kek`, the
    key-encryption key (32 random bytes). Raises `ConfigError` for a bad `kek`, and when a row cannot be
    opened (wrong key-encryption key or altered row)."""

    def __init__(self, kek: bytes) -> None:
        check_key(KEK_SETTING, kek)
        if len(kek) != _KEK_BYTES:
            raise ConfigError(KEK_SETTING, "must be exactly 32 random bytes (AES-256)")
        self._aead = AESGCM(bytes(kek))

    def seal(self, key: SigningKey) -> bytes:
        if isinstance(key.private, bytes):
            plain = key.private
        else:
            plain = key.private.private_bytes(
                serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        nonce = os.urandom(_NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plain, _aad(key.kid, key.alg))

    def open(self, row: Any) -> SigningKey:
        sealed = bytes(row.sealed)
        try:
            plain = self._aead.decrypt(sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], _aad(row.kid, row.alg))
        except (InvalidTag, ValueError):
            raise ConfigError(
                KEK_SETTING, f"cannot open signing key {row.kid!r}: wrong key-encryption key or altered row"
            ) from None
        private: PrivateKey = plain if row.alg == "HS256" else serialization.load_der_private_key(plain, None)  # type: ignore[assignment]
        return SigningKey(
            kid=row.kid,
            alg=row.alg,
            private=private,
            created_at=row.created_at,
            activates_at=row.activates_at,
            serial=row.serial,
        )

    def row(self, key: SigningKey) -> dict[str, Any]:
        """The `sw_signing_keys` row of `key`, sealed."""
        return {
            "kid": key.kid,
            "alg": key.alg,
            "created_at": key.created_at,
            "activates_at": key.activates_at,
            "serial": key.serial,
            "sealed": self.seal(key),
        }
