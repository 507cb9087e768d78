"""`sessionward audit`: probe a running app's session management from outside, with bounded, rate-limited
requests to one origin, and report what it lacks. Framework-free (standard library HTTP, PyJWT)."""

from __future__ import annotations

from .context import Target
from .http import Client
from .model import CHECKS, Finding, Severity
from .runner import Report, run_audit

__all__ = ["CHECKS", "Client", "Finding", "Report", "Severity", "Target", "run_audit"]
