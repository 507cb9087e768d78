"""`sessionward.sfv`: the RFC 9651 sf-string items of the DBSC headers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sessionward.sfv import parse_string_item, serialize_string, serialize_string_item


@given(st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E)))
def test_round_trip(value: str) -> None:
    assert parse_string_item(serialize_string(value)) == value
    assert parse_string_item(serialize_string_item(value, id="s 1") + " ") == value


def test_parameters_ignored_other_shapes_refused() -> None:
    assert parse_string_item('"abc";id="x";n=1;f=1.5;t=tok;b=?0;flag') == "abc"
    for bad in ("abc", '"a', '"a","b"', '"a";ID=1', '"a" ;x', '"\\x"', '"\u00e9"', '"a"x', '"' + "a" * 20000 + '"', 5):
        with pytest.raises(ValueError):
            parse_string_item(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        serialize_string("caf\u00e9")
