"""Report formats: a table for people, JSON for scripts, SARIF 2.1.0 for code-scanning dashboards, JUnit XML
for CI."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from typing import Any

from .. import __version__ as VERSION
from .model import CHECKS, Severity
from .runner import Report

__all__ = ["render", "to_json", "to_junit", "to_sarif", "to_table"]

INFO_URI = "https://github.com/sessionward/sessionward#audit-your-own-app"
SARIF_LEVEL = {Severity.INFO: "note", Severity.LOW: "note", Severity.MEDIUM: "warning", Severity.HIGH: "error",
               Severity.CRITICAL: "error"}
SECURITY_SEVERITY = {Severity.INFO: "0.0", Severity.LOW: "3.0", Severity.MEDIUM: "5.5", Severity.HIGH: "8.0",
                     Severity.CRITICAL: "9.5"}


def to_table(report: Report, *, fail_on: Severity) -> str:
    lines = [f"sessionward audit of {report.origin}: {report.requests} requests in {report.seconds:.1f}s", ""]
    findings = report.findings
    if findings:
        w = max(len(f.id) for f in findings)
        lines.append(f"{'SEVERITY':<9} {'ID':<{w}}  TITLE")
        for f in findings:
            lines.append(f"{f.severity.label:<9} {f.id:<{w}}  {f.check.title}")
        for f in findings:
            lines += ["", f"[{f.severity.label}] {f.id}: {f.check.title}" + (f" ({f.detail})" if f.detail else ""),
                      f"  reference: {f.check.reference}"]
            lines += ["  " + e for e in f.evidence]
            lines.append(f"  fix: {f.check.fix}")
    else:
        lines.append("No findings.")
    lines += ["", "Probes:"]
    for o in report.outcomes:
        state = f"skipped ({o.skipped})" if o.skipped else f"incomplete ({o.error})" if o.error else (
            f"{len(o.findings)} finding(s)" if o.findings else "passed")
        lines.append(f"  {o.name:<14} {o.requests:>3}/{o.budget:<3} requests  {state}")
    worst = report.worst()
    verdict = "FAIL" if worst is not None and worst >= fail_on else "PASS"
    cut = sum(1 for o in report.outcomes if o.error)
    tail = f"; {cut} probe(s) incomplete, so this is not a clean bill" if cut else ""
    lines += ["", f"{verdict}: {len(findings)} finding(s); failing at {fail_on.label} or above{tail}."]
    return "\n".join(lines) + "\n"


def to_json(report: Report, *, fail_on: Severity) -> dict[str, Any]:
    worst = report.worst()
    return {
        "tool": {"name": "sessionward audit", "version": VERSION},
        "target": report.origin,
        "requests": report.requests,
        "seconds": round(report.seconds, 2),
        "fail_on": fail_on.label,
        "failed": worst is not None and worst >= fail_on,
        "findings": [
            {
                "id": f.id,
                "title": f.check.title,
                "severity": f.severity.label,
                "reference": f.check.reference,
                "detail": f.detail,
                "evidence": f.evidence,
                "fix": f.check.fix,
            }
            for f in report.findings
        ],
        "probes": [
            {
                "name": o.name,
                "checks": o.checks,
                "budget": o.budget,
                "requests": o.requests,
                "status": "skipped" if o.skipped else "incomplete" if o.error else "found" if o.findings else "passed",
                "reason": o.skipped or o.error or "",
            }
            for o in report.outcomes
        ],
    }


def to_sarif(report: Report, *, fail_on: Severity) -> dict[str, Any]:
    used = sorted({c for o in report.outcomes for c in o.checks})
    rules = [
        {
            "id": cid,
            "name": "".join(part.capitalize() for part in cid.split("-")),
            "shortDescription": {"text": CHECKS[cid].title},
            "fullDescription": {"text": f"{CHECKS[cid].title}. Reference: {CHECKS[cid].reference}."},
            "help": {"text": CHECKS[cid].fix},
            "defaultConfiguration": {"level": SARIF_LEVEL[CHECKS[cid].severity]},
            "properties": {"security-severity": SECURITY_SEVERITY[CHECKS[cid].severity], "tags": ["security"],
                           "reference": CHECKS[cid].reference},
        }
        for cid in used
    ]
    index = {cid: i for i, cid in enumerate(used)}
    results = [
        {
            "ruleId": f.id,
            "ruleIndex": index[f.id],
            "level": SARIF_LEVEL[f.severity],
            "message": {"text": f"{f.check.title}" + (f" ({f.detail})" if f.detail else "") + ". Evidence:\n"
                        + "\n".join(f.evidence) + f"\nFix: {f.check.fix}"},
            "locations": [{"physicalLocation": {"artifactLocation": {"uri": report.origin + "/"}}}],
        }
        for f in report.findings
    ]
    return {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "sessionward-audit", "version": VERSION, "informationUri": INFO_URI, "rules": rules,
            }},
            "results": results,
            "invocations": [{"executionSuccessful": True}],
        }],
    }


def to_junit(report: Report, *, fail_on: Severity) -> str:
    by_check = {f.id: f for f in report.findings}
    suites = ET.Element("testsuites", name="sessionward audit")
    total = fails = skips = 0
    for o in report.outcomes:
        suite = ET.SubElement(suites, "testsuite", name=o.name)
        n = f_ = s = 0
        for cid in o.checks:
            n += 1
            case = ET.SubElement(suite, "testcase", classname=f"sessionward.audit.{o.name}",
                                 name=f"{cid}: {CHECKS[cid].title}")
            finding = by_check.get(cid)
            if finding is not None and finding.severity >= fail_on:
                f_ += 1
                fail = ET.SubElement(case, "failure", message=f"[{finding.severity.label}] {CHECKS[cid].title}",
                                     type=finding.severity.label)
                fail.text = "\n".join(
                    [*finding.evidence, f"fix: {CHECKS[cid].fix}", f"reference: {CHECKS[cid].reference}"]
                )
            elif finding is not None:
                below = f"[{finding.severity.label}, below --fail-on] "
                ET.SubElement(case, "system-out").text = below + "\n".join(finding.evidence)
            elif o.skipped or o.error:
                s += 1
                ET.SubElement(case, "skipped", message=o.skipped or o.error or "")
        suite.set("tests", str(n))
        suite.set("failures", str(f_))
        suite.set("errors", "0")
        suite.set("skipped", str(s))
        total, fails, skips = total + n, fails + f_, skips + s
    suites.set("tests", str(total))
    suites.set("failures", str(fails))
    suites.set("errors", "0")
    suites.set("skipped", str(skips))
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def render(report: Report, fmt: str, *, fail_on: Severity) -> str:
    if fmt == "table":
        return to_table(report, fail_on=fail_on)
    if fmt == "json":
        return json.dumps(to_json(report, fail_on=fail_on), indent=2) + "\n"
    if fmt == "sarif":
        return json.dumps(to_sarif(report, fail_on=fail_on), indent=2) + "\n"
    if fmt == "junit":
        return to_junit(report, fail_on=fail_on)
    raise ValueError(f"unknown format {fmt!r}")
