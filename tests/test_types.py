"""`mypy` passes over src/sessionward with the `[tool.mypy]` section of pyproject.toml (strict). Needs mypy (in the
`test` extra): fails under CI without it, skips elsewhere."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

from _services import missing_service

ROOT = Path(__file__).resolve().parent.parent


def mypy(*args: str, cache_dir: Path | None = None) -> subprocess.CompletedProcess[str]:
    if importlib.util.find_spec("mypy") is None:
        missing_service("mypy is not installed (pip install -e '.[test]')")
    command = [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"), "--no-error-summary"]
    if cache_dir is not None:
        command += ["--cache-dir", str(cache_dir)]
    return subprocess.run([*command, *args], check=False, cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_mypy_passes_on_src() -> None:
    result = mypy()  # the files come from the configuration
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_reports_errors_with_this_configuration(tmp_path: Path) -> None:
    """The configuration is strict: an unannotated function, returning Any from a typed function and passing the
    wrong type are each reported with their error code."""
    bad = tmp_path / "bad.py"
    bad.write_text(
        "from __future__ import annotations\n\n"
        "import json\n\n\n"
        "def untyped(a, b):\n"
        "    return a + b\n\n\n"
        "def parse(text: str) -> int:\n"
        "    return json.loads(text)\n\n\n"
        "def wrong() -> str:\n"
        "    return parse(42)\n"
    )
    result = mypy(str(bad), cache_dir=tmp_path / "cache")
    assert result.returncode == 1, result.stdout + result.stderr
    for code in ("[no-untyped-def]", "[no-any-return]", "[arg-type]", "[return-value]"):
        assert code in result.stdout, result.stdout
