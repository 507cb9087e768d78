"""Every module of the package imports: a broken import fails here, loudly, instead of silently removing a
feature (the JSON API, the `keys` commands) from the service."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

import sessionward


def _raise(name: str) -> None:
    raise ImportError(f"cannot import package {name}")  # walk_packages would otherwise skip it silently


def import_all(package: ModuleType) -> list[str]:
    """Import every module under `package`; the first failure propagates."""
    names = [info.name for info in pkgutil.walk_packages(package.__path__, package.__name__ + ".", onerror=_raise)]
    for name in names:
        importlib.import_module(name)
    return names


def test_every_module_of_the_package_imports() -> None:
    names = import_all(sessionward)
    assert len(names) > 30  # the walk really found the package
    for expected in ("sessionward.app.api", "sessionward.cli_keys", "sessionward.flask.jwt",
                     "sessionward.stores.redis"):
        assert expected in names


@pytest.mark.parametrize("where", ["module", "subpackage"])
def test_import_all_fails_on_a_broken_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    root = tmp_path / "swbroken"
    (root / "sub").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "fine.py").write_text("X = 1\n")
    broken = root / ("broken.py" if where == "module" else "sub/__init__.py")
    if where == "module":
        (root / "sub" / "__init__.py").write_text("")
    broken.write_text("from .no_such_module import thing\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        with pytest.raises(ImportError):
            import_all(importlib.import_module("swbroken"))
    finally:
        for name in [n for n in sys.modules if n == "swbroken" or n.startswith("swbroken.")]:
            del sys.modules[name]


def test_the_reference_service_has_its_json_api_and_the_cli_its_keys_commands(tmp_path: Path) -> None:
    from sessionward.app import create_app
    from sessionward.cli import build_parser

    app = create_app(tmp_path / "instance")
    assert "api" in app.blueprints and "wellknown" in app.blueprints
    args = build_parser().parse_args(["keys", "list"])
    assert args.func.__name__ == "list_keys"


def test_building_the_cli_imports_no_metrics_nor_web_framework() -> None:
    """`sessionward serve` switches prometheus_client to multiprocess mode before it is imported: if building
    the parser imported it (through the token, event or audit modules), the workers' metrics would never reach
    the management listener. Nor does any command need Flask to parse its arguments."""
    code = (
        "import sys, sessionward.cli as c; c.build_parser(); "
        "print(sorted(m for m in ('prometheus_client', 'flask', 'sessionward.metrics') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
