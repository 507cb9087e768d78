"""The static security headers (C11) as plain data: every value well-formed and current."""

from __future__ import annotations

import re

from sessionward.httpshape import STATIC_HEADERS

#: Permissions-Policy features that browsers implement (a name they do not know is logged as an error)
KNOWN_FEATURES = {"camera", "microphone", "geolocation", "payment", "usb", "fullscreen", "display-capture"}


def test_permissions_policy_is_a_dictionary_of_empty_allowlists_of_known_features() -> None:
    """A structured-field dictionary (RFC 9651) `feature=()` per entry; no withdrawn feature such as FLoC's
    `interest-cohort`, which browsers report as unrecognized."""
    entries = [e.strip() for e in STATIC_HEADERS["Permissions-Policy"].split(",")]
    features = []
    for entry in entries:
        match = re.fullmatch(r"([a-z][a-z0-9-]*)=\(\)", entry)
        assert match is not None, entry
        features.append(match.group(1))
    assert features and set(features) <= KNOWN_FEATURES, features
    assert len(features) == len(set(features))
