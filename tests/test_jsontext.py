"""Strict JSON for untrusted text (request bodies, JOSE headers)."""

from __future__ import annotations

import pytest

from sessionward.jsontext import strict_loads


def test_plain_json_parses() -> None:
    assert strict_loads(b'{"a": [1, 2.5, "x", null, true], "b": {}}') == {"a": [1, 2.5, "x", None, True], "b": {}}


@pytest.mark.parametrize("text", ['{"a": 1, "a": 2}', '{"x": {"a": 1, "a": 1}}', '[{"k": 1, "k": 1}]'])
def test_duplicate_members_refused_at_any_depth(text: str) -> None:
    with pytest.raises(ValueError, match="duplicate member"):
        strict_loads(text)


@pytest.mark.parametrize("text", ["NaN", '{"a": Infinity}', "[-Infinity]"])
def test_nan_and_infinity_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not JSON"):
        strict_loads(text)
