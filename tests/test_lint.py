"""`ruff check src tests bench` passes with the rules configured in pyproject.toml (pycodestyle, pyflakes, isort,
bugbear, pyupgrade, simplify, pylint; tests and benches have their few per-file ignores there). Needs ruff (in the
`test` extra): fails under CI without it, skips elsewhere."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

from _services import missing_service

ROOT = Path(__file__).resolve().parent.parent


def ruff(*args: str) -> subprocess.CompletedProcess[str]:
    if importlib.util.find_spec("ruff") is None:
        missing_service("ruff is not installed (pip install -e '.[test]')")
    command = [sys.executable, "-m", "ruff", "check", "--no-cache", "--config", str(ROOT / "pyproject.toml"), *args]
    return subprocess.run(command, cwd=ROOT, check=False, capture_output=True, text=True, timeout=120)


def test_ruff_check_src_tests_and_bench_passes() -> None:
    result = ruff("src", "tests", "bench")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_reports_a_violation_with_this_configuration(tmp_path: Path) -> None:
    """The configuration really selects the rules: a file with one bugbear, one pyupgrade and one pylint
    violation fails."""
    bad = tmp_path / "bad.py"
    bad.write_text(
        "from typing import Mapping\n\n\n"
        "def f(a: Mapping[str, int], b: list[int]) -> object:\n"
        "    if len(b) > 17:\n"
        "        return None\n"
        "    return list(zip(a, b))\n"
    )
    result = ruff(str(bad))
    assert result.returncode == 1
    for rule in ("B905", "UP035", "PLR2004"):
        assert rule in result.stdout
