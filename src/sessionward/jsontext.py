"""Strict JSON for untrusted text: a duplicate member name or NaN/Infinity is refused, never silently resolved
(RFC 8259 leaves duplicates to the parser; RFC 7515 4 requires a JOSE header with duplicates to be rejected)."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["strict_loads"]


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        names = [name for name, _ in pairs]
        duplicate = next(name for i, name in enumerate(names) if name in names[:i])
        raise ValueError(f"duplicate member {duplicate!r}")
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


#: One decoder for every call: `json.loads` with hooks would build a new `JSONDecoder` each time (a cost paid
#: per token on the cold path).
_DECODER = json.JSONDecoder(object_pairs_hook=_no_duplicates, parse_constant=_no_constant)


def strict_loads(text: str | bytes) -> Any:
    """Parse `text` (bytes must be UTF-8, RFC 8259 8.1: no other encoding is guessed). Raises ValueError (not
    JSON, not UTF-8, a duplicate member, NaN or Infinity) and RecursionError (nesting too deep)."""
    if not isinstance(text, str):
        text = text.decode("utf-8")  # UnicodeDecodeError is a ValueError
    return _DECODER.decode(text)
