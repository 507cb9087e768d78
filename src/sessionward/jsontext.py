"""Strict JSON for untrusted text: a duplicate member name or NaN/Infinity is refused, never silently resolved
(RFC 8259 leaves duplicates to the parser; RFC 7515 4 requires a JOSE header with duplicates to be rejected)."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["strict_loads"]


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in pairs:
        if name in out:
            raise ValueError(f"duplicate member {name!r}")
        out[name] = value
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def strict_loads(text: str | bytes) -> Any:
    """Parse `text`. Raises ValueError (not JSON, not UTF-8, a duplicate member, NaN or Infinity) and
    RecursionError (nesting too deep)."""
    return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
