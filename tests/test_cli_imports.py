"""The CLI imports no web framework: every command but `serve` (and `audit`, which brings its own HTTP client)
runs without loading Flask, Werkzeug, Jinja or gunicorn, so the admin commands work on an install without the
`server` extra and start fast."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

FRAMEWORKS = ("flask", "werkzeug", "jinja2", "gunicorn", "starlette", "fastapi", "uvicorn")

COMMANDS = [
    ["users", "add", "alice", "--password-stdin"],
    ["users", "list"],
    ["users", "disable", "alice"],
    ["sessions", "list"],
    ["sessions", "list", "--user", "alice"],
    ["sessions", "revoke", "--user", "alice"],
    ["sessions", "purge"],
    ["keys", "rotate"],
    ["keys", "list"],
]


def run_commands(instance: Path, commands: list[list[str]]) -> subprocess.CompletedProcess[str]:
    code = (
        "import io, sys\n"
        "from sessionward.cli import main\n"
        f"for argv in {commands!r}:\n"
        "    sys.stdin = io.StringIO('correct horse battery staple\\n')\n"
        f"    rc = main([*argv[:2], '--instance', {str(instance)!r}, *argv[2:]])\n"
        "    assert rc == 0, (argv, rc)\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {FRAMEWORKS!r})\n"
        "print('LOADED', ','.join(bad))\n"
    )
    return subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=240)


def test_admin_commands_load_no_web_framework(tmp_path: Path) -> None:
    result = run_commands(tmp_path / "instance", COMMANDS)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    loaded = result.stdout.strip().splitlines()[-1]
    assert loaded == "LOADED", f"a CLI command imported a web framework: {loaded}"


def test_the_check_sees_a_framework_when_one_comes_back(tmp_path: Path) -> None:
    """The check above is not vacuous: building the Flask app (as `serve` does) is caught."""
    code = ("import sys; from sessionward.app import create_app; create_app(sys.argv[1]); "
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {FRAMEWORKS!r})[:1])")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "i")], capture_output=True, text=True,
                         check=True, timeout=120).stdout
    assert out.strip() == "['flask']"
