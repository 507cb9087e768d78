"""The few Structured Field Values (RFC 9651) the DBSC headers use: serialising an sf-string (with parameters)
and reading a header whose value is one sf-string followed by parameters, which are ignored as the DBSC draft
says (`Secure-Session-Response`, `Sec-Secure-Session-Id`). Anything else raises `ValueError`."""

from __future__ import annotations

import re

__all__ = ["MAX_FIELD_CHARS", "parse_string_item", "serialize_string", "serialize_string_item"]

MAX_FIELD_CHARS = 16384
_PRINTABLE = re.compile(r"[\x20-\x7e]*")
_KEY = r"[a-z*][a-z0-9_.*-]*"
_BARE = "|".join((
    r'"(?:[\x20-\x21\x23-\x5b\x5d-\x7e]|\\["\\])*"',  # sf-string
    r"[-]?[0-9]{1,15}(?:\.[0-9]{1,3})?",  # sf-integer, sf-decimal
    r"[A-Za-z*][!#$%&'*+.^_`|~0-9A-Za-z:/-]*",  # sf-token
    r"\?[01]",  # sf-boolean
))
_PARAMS = re.compile(rf"(?:;[ ]*{_KEY}(?:=(?:{_BARE}))?)*")
_STRING = re.compile(r'"((?:[\x20-\x21\x23-\x5b\x5d-\x7e]|\\["\\])*)"')
_UNESCAPE = re.compile(r"\\([\"\\])")
_TOKEN = re.compile(r"[A-Za-z*][!#$%&'*+.^_`|~0-9A-Za-z:/-]*")


def serialize_string(value: str) -> str:
    """`value` as an sf-string: printable ASCII only, `"` and `\\` escaped. Raises ValueError otherwise."""
    if not isinstance(value, str) or _PRINTABLE.fullmatch(value) is None:
        raise ValueError("an sf-string holds printable ASCII only")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def serialize_string_item(value: str, **params: str) -> str:
    """An sf-string item with string parameters, e.g. `"c";id="s"`."""
    return serialize_string(value) + "".join(f";{key}={serialize_string(v)}" for key, v in params.items())


def parse_string_item(field: str, *, allow_token: bool = False) -> str:
    """The string of a field value that is one sf-string item with (ignored) parameters, surrounding spaces
    allowed; with `allow_token`, an sf-token item is accepted too and its text returned. Raises ValueError for
    anything else (another item type, a list, bad escapes, too long)."""
    if not isinstance(field, str) or len(field) > MAX_FIELD_CHARS:
        raise ValueError("not a bounded string field")
    text = field.strip(" \t")
    match = _STRING.match(text)
    if match is not None and _PARAMS.fullmatch(text, match.end()) is not None:
        return _UNESCAPE.sub(r"\1", match[1])
    token = _TOKEN.match(text) if allow_token else None
    if token is not None and _PARAMS.fullmatch(text, token.end()) is not None:
        return token[0]
    raise ValueError("not an sf-string item")
