"""A short, human description of a User-Agent for the sessions page ("Firefox on Linux")."""

from __future__ import annotations

import re

_BROWSERS = (
    ("Edge", re.compile(r"Edg(?:e|A|iOS)?/")),
    ("Opera", re.compile(r"OPR/")),
    ("Chrome", re.compile(r"(?:Chrome|CriOS|HeadlessChrome)/")),
    ("Firefox", re.compile(r"(?:Firefox|FxiOS)/")),
    ("Safari", re.compile(r"Safari/")),
    ("curl", re.compile(r"^curl/")),
    ("Python", re.compile(r"python-requests|python-httpx|Python-urllib")),
)
_SYSTEMS = (
    ("Android", "Android"),
    ("iOS", "iPhone"),
    ("iPadOS", "iPad"),
    ("Windows", "Windows"),
    ("macOS", "Mac OS X"),
    ("Linux", "Linux"),
)


def describe_user_agent(user_agent: str) -> str:
    if not user_agent:
        return "Unknown device"
    browser = next((name for name, rx in _BROWSERS if rx.search(user_agent)), "Unknown browser")
    system = next((name for name, marker in _SYSTEMS if marker in user_agent), "")
    return f"{browser} on {system}" if system else browser
