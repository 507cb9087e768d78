"""`sessionward audit` against sessionward's own reference service: nothing above info; and against broken
variants of it (tests/audit/variants.py), each with one defence off: caught by its probe, and only by it.
These are also the proof that each probe fails when the defence it checks is removed."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from auditrun import REFERENCE_RECIPE, found, probe_status, run_audit
from variants import VARIANTS

pytestmark = pytest.mark.server  # the real `sessionward serve`, and the service under Werkzeug's server


def test_reference_service_has_no_finding_above_info(reference) -> None:
    result, doc = run_audit(reference.url, "--cacert", reference.cacert, *REFERENCE_RECIPE, "--fail-on", "low",
                            password=reference.password)
    assert result.returncode == 0, result.stdout + result.stderr
    assert found(doc) == set(), doc["findings"]
    status = probe_status(doc)
    # every probe really ran against it (none skipped for want of a recipe)
    assert {name for name, s in status.items() if s != "passed"} == set(), status
    assert all(p["requests"] <= p["budget"] for p in doc["probes"])
    assert doc["seconds"] < 60


REQUIREMENT = {  # SECURITY.md id of the defence each variant switches off
    "no-httponly": "C8", "no-csp": "C11", "logout-csrf-exempt": "C10", "logout-keeps-session": "C5",
    "token-logout-no-revocation": "T9", "no-throttle": "A3",
}


@pytest.fixture(scope="module")
def variant_audits(start_variant) -> dict[str, tuple[Any, Any]]:
    """Every variant started and audited at once (threads around subprocesses): the servers spend their time
    hashing passwords, the audits waiting on them."""

    def audit(name: str) -> tuple[Any, Any]:
        app = start_variant(name)
        return run_audit(app.url, "--cacert", app.cacert, *REFERENCE_RECIPE, password=app.password)

    with ThreadPoolExecutor(max_workers=len(VARIANTS)) as pool:
        futures = {name: pool.submit(audit, name) for name in VARIANTS}
        return {name: f.result() for name, f in futures.items()}


@pytest.mark.parametrize("variant", sorted(VARIANTS), ids=lambda v: f"{REQUIREMENT[v]}-{v}")
def test_broken_variant_caught_by_its_probe_only(variant_audits, variant: str) -> None:
    result, doc = variant_audits[variant]
    assert doc is not None, result.stderr[-2000:]
    assert found(doc) == {VARIANTS[variant]}, (doc["findings"], probe_status(doc), result.stderr[-2000:])
    assert result.returncode == 1
    assert all(p["requests"] <= p["budget"] for p in doc["probes"])
