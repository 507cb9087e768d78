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


@pytest.mark.parametrize("data", ['{"a": 1}'.encode("utf-16"), '{"a": 1}'.encode("utf-32"), b'\xef\xbb\xbf{"a": 1}'])
def test_bytes_must_be_utf8_without_bom(data: bytes) -> None:
    """RFC 8259 8.1: JSON exchanged between systems is UTF-8 (no BOM); `json.loads` would guess UTF-16/32."""
    with pytest.raises(ValueError):
        strict_loads(data)


def test_one_decoder_is_reused_not_built_per_call() -> None:
    import json

    built: list[object] = []
    original = json.JSONDecoder.__init__

    def counting(self: json.JSONDecoder, *args: object, **kwargs: object) -> None:
        built.append(self)
        original(self, *args, **kwargs)  # type: ignore[arg-type]

    json.JSONDecoder.__init__ = counting  # type: ignore[method-assign]
    try:
        for _ in range(3):
            strict_loads('{"a": 1}')
    finally:
        json.JSONDecoder.__init__ = original  # type: ignore[method-assign]
    assert built == []
