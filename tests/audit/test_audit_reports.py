"""The audit's outputs and exit status: JSON and SARIF validate against their schemas (SARIF 2.1.0's official
schema, from oasis-tcs/sarif-spec sarif-2.1/schema/sarif-schema-2.1.0.json), JUnit XML is well formed with
one test case per check, secrets are masked, and the exit status follows --fail-on."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest
from auditrun import found, run_audit

SCHEMAS = Path(__file__).parent / "schemas"


def _validate(doc: object, schema_file: str) -> None:
    schema = json.loads((SCHEMAS / schema_file).read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    errors = sorted(cls(schema).iter_errors(doc), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:10])


def _jwt_lab_args(jwt_lab) -> tuple[str, ...]:
    return ("--json-login", "/login", "--username", "apiuser", "--protected", "/profile")


def test_json_report_validates_against_its_schema(jwt_lab) -> None:
    result, doc = run_audit(jwt_lab.url, *_jwt_lab_args(jwt_lab), password=jwt_lab.password)
    _validate(doc, "audit-report.schema.json")
    assert doc["failed"] is True and doc["findings"]
    # a broken document is refused by the same schema: the validation is not vacuous
    broken = {**doc, "findings": [{**doc["findings"][0], "severity": "severe"}]}
    with pytest.raises(AssertionError):
        _validate(broken, "audit-report.schema.json")


def test_sarif_report_validates_against_the_sarif_2_1_0_schema(jwt_lab, tmp_path) -> None:
    out = tmp_path / "audit.sarif"
    result, _ = run_audit(jwt_lab.url, *_jwt_lab_args(jwt_lab), "--output", str(out), password=jwt_lab.password,
                          fmt="sarif")
    assert result.returncode == 1 and result.stdout == ""
    sarif = json.loads(out.read_text())
    _validate(sarif, "sarif-schema-2.1.0.json")
    run = sarif["runs"][0]
    rule_ids = [r["id"] for r in run["tool"]["driver"]["rules"]]
    assert {r["ruleId"] for r in run["results"]} >= {"debug-interactive", "token-weak-secret", "login-plain-http"}
    for r in run["results"]:
        assert rule_ids[r["ruleIndex"]] == r["ruleId"]
        assert r["level"] in ("note", "warning", "error")
    with pytest.raises(AssertionError):
        _validate({**sarif, "version": "2.0.0"}, "sarif-schema-2.1.0.json")


def test_junit_report_has_a_case_per_check_and_failures_for_findings(session_lab) -> None:
    result, _ = run_audit(session_lab.url, "--insecure", "--form-login", "/login", "--username", "admin",
                          "--protected", "/dashboard", "--logout", "/logout", fmt="junit")
    assert result.returncode == 1
    root = ET.fromstring(result.stdout)
    assert root.tag == "testsuites"
    cases = root.findall("./testsuite/testcase")
    failed = {c.get("name", "").split(":")[0] for c in cases if c.find("failure") is not None}
    assert {"logout-replay", "debug-interactive", "csrf-login", "login-throttle"} <= failed
    assert "logout-get" not in failed  # low: below the default --fail-on medium, reported without failing
    assert int(root.get("failures", "-1")) == len(failed)
    for suite in root.findall("testsuite"):
        assert int(suite.get("tests", "0")) == len(suite.findall("testcase"))
    skipped = {c.get("name", "").split(":")[0] for c in cases if c.find("skipped") is not None}
    assert "token-alg-none" in skipped  # no JSON login in this recipe


def test_table_masks_secrets_and_shows_budgets(session_lab) -> None:
    result, _ = run_audit(session_lab.url, "--insecure", "--form-login", "/login", "--username", "admin",
                          "--protected", "/dashboard", "--logout", "/logout", fmt="table")
    text = result.stdout
    assert "logout-replay" in text and "fix:" in text and "ASVS 5.0 7.4.1" in text
    assert not re.search(r"eyJ[\w-]{12,}", text), "a cookie value leaked into the report"
    assert re.search(r"logout\s+\d+/16\s+requests", text)  # every probe's request count and budget shown
    assert "[1/" in result.stderr  # progress on standard error, not in the report


def test_fail_on_threshold_sets_the_exit_status(session_lab) -> None:
    args = ("--insecure", "--form-login", "/login", "--username", "admin", "--protected", "/dashboard",
            "--only", "headers")
    result, doc = run_audit(session_lab.url, *args, "--fail-on", "high")
    assert found(doc) and {f["severity"] for f in doc["findings"]} <= {"low", "medium"}
    assert result.returncode == 0 and doc["failed"] is False
    result, doc = run_audit(session_lab.url, *args)  # default: medium
    assert result.returncode == 1 and doc["failed"] is True


def test_unreachable_target_and_usage_errors_exit_2(tmp_path) -> None:
    from serverproc import free_port

    result, doc = run_audit(f"http://127.0.0.1:{free_port()}")
    assert result.returncode == 2 and "unreachable" in result.stderr and doc is None
    result, _ = run_audit("http://127.0.0.1:9", "--form-login", "/login", "--protected", "/x")
    assert result.returncode == 2 and "--username" in result.stderr
    result, _ = run_audit("ftp://127.0.0.1", "--quiet")
    assert result.returncode == 2
    result, _ = run_audit("http://127.0.0.1:9", "--fail-on", "severe")
    assert result.returncode == 2
    result, _ = run_audit("http://127.0.0.1:9", "--only", "cookie")
    assert result.returncode == 2 and "no such probe" in result.stderr


def test_max_requests_caps_the_whole_run(session_lab) -> None:
    result, doc = run_audit(session_lab.url, "--insecure", "--form-login", "/login", "--username", "admin",
                            "--protected", "/dashboard", "--logout", "/logout", "--max-requests", "8")
    assert doc["requests"] <= 8
    incomplete = [p for p in doc["probes"] if p["status"] == "incomplete"]
    assert incomplete and all("--max-requests 8" in p["reason"] for p in incomplete)
