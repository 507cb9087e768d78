"""The compact-JWS plumbing in front of PyJWT: the size and shape gate that runs before any parsing, the
strict header parser, and the bounded cache of verified tokens.
"""

from __future__ import annotations

import base64
import binascii
import re
import threading
from collections import OrderedDict
from typing import Any

from ..exceptions import TokenError
from ..jsontext import strict_loads
from .claims import Claims

__all__ = ["VerifiedCache", "parse_header"]

_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")
_PARTS = 3  # header.payload.signature


def _decode_segment(segment: str) -> bytes:
    return base64.b64decode(segment + "=" * (-len(segment) % 4), altchars=b"-_", validate=True)


def parse_header(token: object, *, max_bytes: int) -> dict[str, Any]:
    """The JOSE header of a compact JWS, after the size check and an exact shape check. Nothing else of the
    token is read. Raises `TokenError` ("too large" before any parsing at all; "malformed")."""
    if not isinstance(token, str):
        raise TokenError("not a string")
    if len(token) > max_bytes:
        raise TokenError("too large")
    if not token.isascii():
        raise TokenError("malformed")
    parts = token.split(".")
    if len(parts) != _PARTS or not all(_SEGMENT.fullmatch(p) for p in parts):
        raise TokenError("malformed")
    try:
        header = strict_loads(_decode_segment(parts[0]))
    except (ValueError, binascii.Error, RecursionError):  # JSONDecodeError, UnicodeDecodeError; deep nesting
        raise TokenError("malformed header") from None
    if not isinstance(header, dict):
        raise TokenError("malformed header")
    return header


class VerifiedCache:
    """A bounded LRU of verified claims keyed by the exact token text, tagged with the key set it was
    verified under (a changed key set empties it)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._data: OrderedDict[str, Claims] = OrderedDict()
        self._tag: tuple[int, int] | None = None

    def get(self, token: str, tag: tuple[int, int]) -> Claims | None:
        with self._lock:
            if tag != self._tag:
                self._data.clear()
                self._tag = tag
                return None
            claims = self._data.get(token)
            if claims is not None:
                self._data.move_to_end(token)
            return claims

    def put(self, token: str, claims: Claims, tag: tuple[int, int]) -> None:
        if self._size <= 0:
            return
        with self._lock:
            if tag != self._tag:
                self._data.clear()
                self._tag = tag
            self._data[token] = claims
            self._data.move_to_end(token)
            while len(self._data) > self._size:
                self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)
