"""The sync modules are generated from the async sources (scripts/gen_sync.py); a stale one fails here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_generated_sync_module_matches_a_fresh_generation() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_sync.py"), "--check"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_a_generated_module_says_where_its_source_is() -> None:
    package = ROOT / "src" / "sessionward"
    for source in (package / "aio").rglob("*.py"):
        if "unasync: hand-written" in "".join(source.read_text(encoding="utf-8").splitlines(keepends=True)[:5]):
            continue
        twin = package / source.relative_to(package / "aio")
        assert twin.read_text(encoding="utf-8").startswith("# GENERATED from src/sessionward/aio/"), twin
