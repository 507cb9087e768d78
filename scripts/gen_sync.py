#!/usr/bin/env python3
"""Generate sessionward's sync modules from their async sources (one implementation, two flavours).

The async code under `src/sessionward/aio/` is the source of truth. Every module there is turned into its sync
twin at the same path without `aio/` (`aio/sessions.py` -> `sessionward/sessions.py`, `aio/stores/sql.py` ->
`sessionward/stores/sql.py`) by `unasync` (the tool httpcore and elasticsearch-py use): `async`/`await` go,
`AsyncFoo` names become `Foo`, `__aenter__` becomes `__enter__` and so on, plus the module and name renames
below. Then imports are sorted again (ruff's isort), since `sessionward.aio.x` sorts elsewhere than
`sessionward.x`, and nested `with` statements (from `with ...: async with ...:`) are joined (ruff's SIM117).

Conventions for the async sources:
- import sessionward modules absolutely (`from sessionward.aio.stores.protocol import AsyncSessionStore`,
  `from sessionward.exceptions import ...`): relative imports would point elsewhere once moved;
- a module whose first lines hold the marker `unasync: hand-written` is not generated: it has a hand-written
  twin (event-loop or thread primitives, the pub/sub listener, the public `aio/__init__.py`).

    python scripts/gen_sync.py          # write the sync modules
    python scripts/gen_sync.py --check  # exit 1, listing them, if any sync module differs from a fresh generation
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import unasync

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "sessionward"
SOURCE = PACKAGE / "aio"
MARKER = "unasync: hand-written"

#: Names unasync does not know. `AsyncFoo` -> `Foo` is added for every such name found in the sources.
REPLACEMENTS = {
    "create_async_engine": "create_engine",
    "aclose": "close",
    "aclosing": "closing",
    "anext": "next",
    "asynccontextmanager": "contextmanager",
    "AsyncExitStack": "ExitStack",
    "async_scoped_session": "scoped_session",
}

#: Module paths, replaced in the generated text (longest first).
MODULES = {
    "sessionward.aio.": "sessionward.",
    "from sessionward.aio import ": "from sessionward import ",
    "sqlalchemy.ext.asyncio": "sqlalchemy",
    "redis.asyncio": "redis",
}

HEADER = "# GENERATED from src/sessionward/aio/{rel} by scripts/gen_sync.py: edit that file, not this one.\n"


def sources() -> list[Path]:
    found = []
    for path in sorted(SOURCE.rglob("*.py")):
        head = "".join(path.read_text(encoding="utf-8").splitlines(keepends=True)[:5])
        if MARKER not in head:
            found.append(path)
    return found


def _async_names(paths: list[Path]) -> dict[str, str]:
    names: dict[str, str] = {}
    for path in paths:
        for name in re.findall(r"\bAsync([A-Z]\w*)", path.read_text(encoding="utf-8")):
            names["Async" + name] = name
    return names


def _rename_modules(text: str) -> str:
    for old in sorted(MODULES, key=len, reverse=True):
        text = text.replace(old, MODULES[old])
    return text


def _sort_imports(text: str, filename: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--quiet", "--fix", "--select", "I,SIM117", "--exit-zero",
         "--stdin-filename", str(filename), "-"],
        input=text, capture_output=True, text=True, cwd=ROOT, check=True,
    )
    return done.stdout


def generate() -> dict[Path, str]:
    """Every generated sync module's path and text."""
    paths = sources()
    replacements = {**_async_names(paths), **REPLACEMENTS}
    out: dict[Path, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / "aio"
        shutil.copytree(SOURCE, staged)
        rule = unasync.Rule(fromdir=str(staged) + "/", todir=str(Path(tmp) / "sync") + "/",
                            additional_replacements=replacements)
        rels = [path.relative_to(SOURCE) for path in paths]
        unasync.unasync_files([str(staged / rel) for rel in rels], rules=[rule])
        for rel in rels:
            text = (Path(tmp) / "sync" / rel).read_text(encoding="utf-8")
            target = PACKAGE / rel
            text = HEADER.format(rel=rel.as_posix()) + _rename_modules(text)
            out[target] = _sort_imports(text, target)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if a generated module is stale")
    args = parser.parse_args(argv)
    generated = generate()
    stale = [path for path, text in generated.items()
             if not path.exists() or path.read_text(encoding="utf-8") != text]
    if args.check:
        for path in stale:
            print(f"stale: {path.relative_to(ROOT)} (run: python scripts/gen_sync.py)", file=sys.stderr)
        return 1 if stale else 0
    for path in stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(generated[path], encoding="utf-8")
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
