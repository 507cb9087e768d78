"""User accounts as data: the `User` record and the username rules, shared by both flavours of the users table
(`sessionward.users.UserStore` and its asyncio source `AsyncUserStore`) and by login throttling.

Usernames are shown as given but looked up by `normalize_username` (NFKC + casefold), so "Alice",
"ALICE" and "Ａｌｉｃｅ" are one account.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field

from sessionward.exceptions import ValidationError

__all__ = ["MAX_USERNAME_LENGTH", "User", "normalize_username", "validate_username"]

MAX_USERNAME_LENGTH = 64


def normalize_username(username: str) -> str:
    """The lookup form of a username: NFKC, then casefold (and NFKC again, as casefold can denormalize)."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", username).casefold())


def validate_username(username: str) -> str:
    """Return `username` unchanged if acceptable: 1-64 printable characters, no control characters, no
    leading/trailing whitespace. Raises `ValidationError` (field "username") otherwise."""
    if not isinstance(username, str):
        raise ValidationError("Username must be text.", field="username")
    if not 1 <= len(username) <= MAX_USERNAME_LENGTH:
        raise ValidationError(f"Username must be 1 to {MAX_USERNAME_LENGTH} characters long.", field="username")
    if not username.isprintable():
        raise ValidationError("Username must not contain control or invisible characters.", field="username")
    if username != username.strip():
        raise ValidationError("Username must not start or end with a space.", field="username")
    return username


@dataclass(frozen=True, slots=True)
class User:
    id: str  #: random public id (128 bits), never the username
    username: str  #: as given at creation, for display
    password_hash: str = field(repr=False)
    disabled: bool
    created_at: float
    password_changed_at: float
