"""Opaque identifiers and secrets, always from `secrets`, and the one-way hash under which they are stored.

Session secrets carry 256 bits; public ids (shown to users, used in URLs and in a token's `sid`) 128 bits.
A store keeps only `hash_secret(secret)`, so a leaked store yields no live session.
"""

from __future__ import annotations

import hashlib
import re
import secrets

SECRET_BYTES = 32  # 256 bits
PUBLIC_ID_BYTES = 16  # 128 bits

# token_urlsafe(32) gives 43 characters of the URL-safe base64 alphabet.
_SECRET_RE = re.compile(r"[A-Za-z0-9_-]{43}")
_PUBLIC_ID_RE = re.compile(r"[A-Za-z0-9_-]{22}")


def new_secret() -> str:
    """A fresh 256-bit secret, URL-safe text (43 characters)."""
    return secrets.token_urlsafe(SECRET_BYTES)


def new_public_id() -> str:
    """A fresh 128-bit public identifier, URL-safe text (22 characters)."""
    return secrets.token_urlsafe(PUBLIC_ID_BYTES)


def hash_secret(secret: str) -> str:
    """The form under which a secret is stored: SHA-256, hex. The secret has 256 bits, so no salt or
    slow hash is needed (it cannot be guessed, only stolen)."""
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def looks_like_secret(value: str) -> bool:
    """True if `value` has the exact shape of a secret from `new_secret` (cheap pre-check before a lookup)."""
    return _SECRET_RE.fullmatch(value) is not None


def looks_like_public_id(value: str) -> bool:
    return _PUBLIC_ID_RE.fullmatch(value) is not None
