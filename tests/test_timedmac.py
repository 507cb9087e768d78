"""`sessionward.timedmac`: stateless values bound to a purpose, a context and a time window; key rotation."""

from __future__ import annotations

import secrets

import pytest

from sessionward.exceptions import ConfigError
from sessionward.timedmac import TimedMAC, TimedMACError

K1, K2 = secrets.token_bytes(32), secrets.token_bytes(32)
NOW = 1_800_000_000.0


def reason(mac: TimedMAC, value: object, context: str = "c", now: float = NOW) -> str:
    with pytest.raises(TimedMACError) as exc:
        mac.verify(value, context, now=now, max_age=60, future_skew=2)
    return exc.value.reason


def test_window_context_and_purpose() -> None:
    mac = TimedMAC([K1], purpose="p", setting="S")
    value = mac.issue("c", now=NOW)
    assert mac.verify(value, "c", now=NOW + 60, max_age=60) == int(NOW)
    assert mac.issue("c", now=NOW) != value  # random part
    assert reason(mac, value, now=NOW + 61) == "expired"
    assert reason(mac, mac.issue("c", now=NOW + 3)) == "future"
    assert mac.verify(mac.issue("c", now=NOW + 2), "c", now=NOW, max_age=60, future_skew=2)
    assert reason(mac, value, context="d") == "bad mac"
    assert reason(TimedMAC([K1], purpose="q", setting="S"), value) == "bad mac"
    issued, rand, tag = value.split(".")
    assert reason(mac, f"{int(issued) + 1}.{rand}.{tag}") == "bad mac"  # the time is inside the MAC
    for junk in ("", "x" * 200, 5, None, value + " ", f"0{value}", value.replace(".", ",")):
        assert reason(mac, junk) == "malformed"


def test_rotation_newest_last() -> None:
    old = TimedMAC([K1], purpose="p", setting="S").issue("c", now=NOW)
    rotated = TimedMAC([K1, K2], purpose="p", setting="S")
    assert rotated.verify(old, "c", now=NOW, max_age=60)
    assert TimedMAC([K2], purpose="p", setting="S").verify(rotated.issue("c", now=NOW), "c", now=NOW, max_age=60)
    assert reason(TimedMAC([K2], purpose="p", setting="S"), old) == "bad mac"


@pytest.mark.parametrize("keys", [[], b"k" * 32, [b"short"], [b"\x00" * 32], ["text key of enough length......"]])
def test_keys_checked(keys: object) -> None:
    with pytest.raises(ConfigError) as exc:
        TimedMAC(keys, purpose="p", setting="MY_KEYS")  # type: ignore[arg-type]
    assert exc.value.setting == "MY_KEYS"
