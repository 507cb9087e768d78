"""What an audit produces: checks (one id each), findings with evidence, and per-probe outcomes."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

__all__ = ["Check", "Finding", "ProbeOutcome", "Severity", "mask", "CHECKS", "check"]


class Severity(enum.IntEnum):
    INFO = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @classmethod
    def parse(cls, text: str) -> Severity:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            raise ValueError(f"unknown severity {text!r} (info, low, medium, high, critical)") from None

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class Check:
    """One thing the audit can find: stable id, title, severity, reference and the fix in one line."""

    id: str
    title: str
    severity: Severity
    reference: str
    fix: str
    area: str


@dataclass
class Finding:
    check: Check
    evidence: list[str]
    detail: str = ""

    @property
    def id(self) -> str:
        return self.check.id

    @property
    def severity(self) -> Severity:
        return self.check.severity


@dataclass
class ProbeOutcome:
    """One probe's run: what it checked, what it found, how many requests it sent, or why it was skipped."""

    name: str
    checks: list[str]
    budget: int
    requests: int = 0
    findings: list[Finding] = field(default_factory=list)
    skipped: str | None = None
    error: str | None = None


CHECKS: dict[str, Check] = {}


def check(id: str, title: str, severity: str, reference: str, fix: str) -> Check:
    """Declare a check (module level, once)."""
    c = Check(id, title, Severity.parse(severity), reference, fix, id.split("-", 1)[0])
    CHECKS[id] = c
    return c


_MASK_WHOLE = 8  # a value this short is hidden entirely: its first 4 characters would give half of it away


def mask(value: str) -> str:
    """A secret shown only by its start and length: `abcd…(43 chars)`."""
    if len(value) <= _MASK_WHOLE:
        return "…" if value else ""
    return f"{value[:4]}…({len(value)} chars)"
