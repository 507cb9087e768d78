"""Run every probe against one target, each within its request budget, and collect the report."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .context import Context, LoginFailed, Target
from .http import AuditHTTPError, BudgetExceeded, Client, OriginError
from .model import Finding, ProbeOutcome, Severity
from .probes import Skip, all_probes, budget_of

__all__ = ["Report", "run_audit"]


@dataclass
class Report:
    origin: str
    target: Target
    outcomes: list[ProbeOutcome] = field(default_factory=list)
    requests: int = 0
    seconds: float = 0.0

    @property
    def findings(self) -> list[Finding]:
        out = [f for o in self.outcomes for f in o.findings]
        return sorted(out, key=lambda f: (-f.severity, f.id))

    def worst(self) -> Severity | None:
        return max((f.severity for f in self.findings), default=None)


def run_audit(
    client: Client,
    target: Target,
    *,
    only: set[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> Report:
    """Run the probes in order. A probe that fails to log in, runs out of budget or hits a network error is
    recorded with the reason; the run goes on. Raises `AuditHTTPError` only if the origin is unreachable."""
    ctx = Context(client, target)
    report = Report(client.origin, target)
    started = time.monotonic()
    probes = [p for p in all_probes() if only is None or p.name in only]
    # fail fast (exit 2) when nothing answers at all
    client.start_probe(1)
    try:
        ctx.browser().get("/")
    finally:
        report.requests += client.end_probe()
    for i, p in enumerate(probes, 1):
        budget = budget_of(p, ctx)
        outcome = ProbeOutcome(p.name, [c.id for c in p.checks], budget)
        if progress:
            progress(f"[{i}/{len(probes)}] {p.name} (at most {budget} requests)")
        client.start_probe(budget)
        try:
            outcome.findings = p.run(ctx)
        except Skip as exc:
            outcome.skipped = str(exc)
        except LoginFailed as exc:
            outcome.error = f"login failed: {exc}"
        except BudgetExceeded as exc:
            outcome.error = f"stopped: {exc}"
        except OriginError as exc:
            outcome.error = str(exc)
        except AuditHTTPError as exc:
            outcome.error = f"network: {exc}"
        finally:
            outcome.requests = client.end_probe()
        report.requests += outcome.requests
        report.outcomes.append(outcome)
        if progress:
            state = outcome.skipped and f"skipped: {outcome.skipped}" or outcome.error or (
                f"{len(outcome.findings)} finding(s)" if outcome.findings else "ok")
            progress(f"      {outcome.requests} request(s), {state}")
    report.seconds = time.monotonic() - started
    return report
