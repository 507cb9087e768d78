"""Forging tokens the way an attacker would, for the token tests: the audit's implementation
(`sessionward.audit.forge`), so `sessionward audit` and the suite forge the same attacks."""

from __future__ import annotations

from sessionward.audit.forge import b64u, compact, parts, resign, unb64u

__all__ = ["b64u", "compact", "parts", "resign", "unb64u"]
