"""Running the real `sessionward audit` command line in tests, and reading its JSON report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent.parent / "e2e"))

from serverproc import sessionward_command  # noqa: E402

RATE = "50"  # loopback: the tests raise the default rate (4/s); the request budgets stay the same


def run_audit(url: str, *args: str, password: str | None = None, fmt: str = "json",
              timeout: float = 90) -> tuple[subprocess.CompletedProcess[str], Any]:
    """The real command line: `sessionward audit URL ARGS --format FMT`; returns the process and, for json/
    sarif, the parsed document."""
    env = {**os.environ, "AUDIT_PASSWORD": password or ""}
    cmd = [*sessionward_command(), "audit", url, *args, "--rate", RATE, "--format", fmt]
    if password is not None:
        cmd += ["--password-env", "AUDIT_PASSWORD"]
    result = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=timeout, env=env,
                            stdin=subprocess.DEVNULL)
    doc = json.loads(result.stdout) if fmt in ("json", "sarif") and result.stdout.strip() else None
    return result, doc


REFERENCE_RECIPE = (
    "--form-login", "/login", "--json-login", "/api/login", "--username", "admin",
    "--protected", "/dashboard", "--api-protected", "/api/profile", "--logout", "/logout",
    "--api-logout", "/api/logout", "--refresh", "/api/refresh",
)


def found(doc: Any, at_least: str = "low") -> set[str]:
    order = ["info", "low", "medium", "high", "critical"]
    return {f["id"] for f in doc["findings"] if order.index(f["severity"]) >= order.index(at_least)}


def probe_status(doc: Any) -> dict[str, str]:
    return {p["name"]: p["status"] for p in doc["probes"]}
