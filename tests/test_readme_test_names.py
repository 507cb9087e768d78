"""Every test the README names (the security properties cite them as `test_...`) exists: a renamed or removed
test cannot leave a rule row pointing at nothing."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_names_only_existing_tests() -> None:
    named = set(re.findall(r"`(test_\w+)`", (ROOT / "README.md").read_text(encoding="utf-8")))
    assert named, "the README names no tests"
    defined = {
        name
        for path in (ROOT / "tests").rglob("*.py")
        for name in re.findall(r"^\s*(?:async\s+)?def (test_\w+)", path.read_text(encoding="utf-8"), re.M)
    }
    assert sorted(named - defined) == []
