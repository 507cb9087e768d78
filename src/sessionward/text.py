"""Text at the edge (O5): the one check for every string a client can send in a form or a JSON body.

Refused: lone surrogates (JSON can carry them as `\\ud800`; no store can keep them), control characters
(C0 incl. NUL, DEL, C1: PostgreSQL refuses NUL, and CR/LF/ESC forge log lines or headers), Unicode
bidirectional controls (they make a name or a log line read differently from what it is) and values longer
than `max_length`. Everything else passes, printable Unicode and spaces included, so any password a person can
type is kept. The value itself never appears in the error: it may be a password.
"""

from __future__ import annotations

import re

from .exceptions import ValidationError

__all__ = ["MAX_TEXT", "check_text", "log_safe", "text_problem"]

#: Longest accepted field, in characters (passwords are refused past 1024 by the authenticator too).
MAX_TEXT = 1024

_REFUSED = re.compile(
    "[\x00-\x1f\x7f-\x9f"  # C0 (NUL, TAB, CR, LF, ESC ...), DEL, C1
    "\ud800-\udfff"  # surrogates: in a Python str only ever lone ones (from JSON escapes or surrogateescape)
    "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]"  # bidi marks, embeddings, overrides and isolates
)


def text_problem(value: str, *, max_length: int | None = MAX_TEXT) -> str | None:
    """Why `value` is refused (a short reason for the client, never the value), or None if it is fine.
    `max_length=None` leaves the length to the caller (still bounded by the request body limit)."""
    if max_length is not None and len(value) > max_length:
        return f"must be at most {max_length} characters long"
    if _REFUSED.search(value) is not None:
        return "contains a control, bidirectional-override or invalid (surrogate) character"
    return None


def check_text(value: str, *, field: str, max_length: int | None = MAX_TEXT) -> str:
    """`value` unchanged if acceptable. Raises `ValidationError` (422, naming `field`) otherwise."""
    problem = text_problem(value, max_length=max_length)
    if problem is not None:
        raise ValidationError(f"Field {field!r} {problem}.", field=field)
    return value


def log_safe(value: object) -> str:
    """`value` as text for a log line: refused characters written as escapes (`\\x0a`, `\\u202e`, `\\ud800`),
    so client text can neither break a line nor hide what it says."""
    text = value if isinstance(value, str) else str(value)
    return _REFUSED.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)
