"""O5: the one check for client text at the edge (`sessionward.text`), and where the core relies on it."""

from __future__ import annotations

import logging

import pytest

from sessionward import events
from sessionward.exceptions import PasswordPolicyError, ValidationError
from sessionward.passwords import PasswordPolicy
from sessionward.text import MAX_TEXT, check_text, log_safe, text_problem

REFUSED = ["\x00", "\t", "\r\n", "\x1b[31m", "\x7f", "\x85", "\x9b", "\ud800", "\udfff", "\u202e", "\u2066", "\u200f",
           "\u061c"]
ACCEPTED = ["alice", "correct horse battery staple", "Zoë Ångström", "пароль", "密码🙂", "\u00a0nbsp", "a" * MAX_TEXT]


@pytest.mark.parametrize("bad", REFUSED)
def test_O5_control_bidi_and_surrogate_characters_are_refused(bad: str) -> None:
    with pytest.raises(ValidationError) as info:
        check_text(f"ab{bad}cd", field="username")
    assert info.value.field == "username"
    assert bad not in str(info.value)  # the value (maybe a password) is never echoed


@pytest.mark.parametrize("good", ACCEPTED)
def test_O5_printable_unicode_and_spaces_pass_unchanged(good: str) -> None:
    assert check_text(good, field="password") is good


def test_O5_long_values_are_refused_unless_the_caller_owns_the_length() -> None:
    with pytest.raises(ValidationError):
        check_text("a" * (MAX_TEXT + 1), field="password")
    assert text_problem("a" * 10, max_length=5) is not None
    assert text_problem("a" * 100_000, max_length=None) is None


def test_O5_log_safe_escapes_what_could_forge_or_hide_a_line() -> None:
    assert log_safe("a\nb\x00c\u202ed\ud800") == "a\\nb\\x00c\\u202ed\\ud800"
    assert log_safe("plain ü") == "plain ü"


def test_O5_security_events_escape_client_text(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="sessionward.security"):
        events.emit("csrf_failed", path="/x\nlogin_succeeded username=admin\u202e", method="POST")
    message = caplog.records[-1].getMessage()
    assert "\n" not in message and "\u202e" not in message and "\\n" in message


@pytest.mark.parametrize("bad", ["\x00", "\t", "\u202e", "\ud800"])
def test_O5_new_passwords_follow_the_edge_rule(bad: str) -> None:
    """A password the login form and API would refuse cannot be set either (e.g. through the CLI)."""
    with pytest.raises(PasswordPolicyError):
        PasswordPolicy().check(f"long enough {bad} passphrase")
    PasswordPolicy().check("long enough \u00a0 passphrase ü")
