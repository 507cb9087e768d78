"""Optional dependencies: a URL or feature whose driver is missing stops with one clear error naming the extra
(`pip install 'sessionward[redis]'`). Each case runs in a fresh interpreter where the driver's import fails
(`sys.modules[name] = None`), as on an install without that extra."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def without(modules: list[str], code: str, *args: str, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:
    prelude = "import sys\n" + "".join(f"sys.modules[{m!r}] = None\n" for m in modules)
    return subprocess.run([sys.executable, "-c", prelude + code, *args], check=False, capture_output=True, text=True,
                          timeout=120, env={**os.environ, **(env or {})})


@pytest.mark.parametrize(("missing", "url", "extra"), [
    (["redis"], "redis://127.0.0.1:6379/0", "redis"),
    (["redis"], "redis+sentinel://127.0.0.1:26379/mymaster", "redis"),
    (["psycopg"], "postgresql://postgres@127.0.0.1:5432/test", "postgres"),
])
def test_open_store_names_the_missing_extra(missing: list[str], url: str, extra: str) -> None:
    code = (
        "from sessionward.exceptions import MissingExtra\n"
        "from sessionward.stores import open_store\n"
        "try:\n"
        "    open_store(sys.argv[1])\n"
        "except MissingExtra as exc:\n"
        "    print(type(exc).__name__, exc.extra, exc)\n"
    )
    result = without(missing, code, url)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"MissingExtra {extra} " in result.stdout
    assert f"pip install 'sessionward[{extra}]'" in result.stdout


def test_sqlite_and_the_core_need_no_extra(tmp_path: Path) -> None:
    """`import sessionward` and a SQLite store work with every optional driver and framework missing."""
    code = (
        "import sessionward\n"
        "[getattr(sessionward, n) for n in sessionward.__all__]\n"
        "from sessionward.stores import open_store\n"
        "open_store('sqlite:///' + sys.argv[1]).close()\n"
        "print('ok')\n"
    )
    result = without(["redis", "psycopg", "flask", "werkzeug", "gunicorn", "starlette", "fastapi"], code,
                     str(tmp_path / "s.db"))
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]


def test_the_flask_extension_names_its_extra() -> None:
    result = without(["flask"], "import sessionward.flask\n")
    assert result.returncode == 1
    assert "pip install 'sessionward[flask]'" in result.stderr


def test_the_cli_says_which_extra_a_store_url_needs(tmp_path: Path) -> None:
    """An admin command on a Redis deployment without redis-py: one line naming the extra, no traceback."""
    code = "from sessionward.cli import main\nsys.exit(main(['users', 'list', '--instance', sys.argv[1]]))\n"
    result = without(["redis"], code, str(tmp_path / "i"), env={"SESSIONWARD_STORE_URL": "redis://127.0.0.1:6379/0"})
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.strip() == (
        "sessionward: error: Redis stores (redis://, rediss://, unix://, redis+sentinel://, redis+cluster://) needs "
        "'redis', which is not installed: pip install 'sessionward[redis]'"
    )


def test_serve_without_the_server_extra_names_it(tmp_path: Path) -> None:
    code = "from sessionward.cli import main\nsys.exit(main(['serve', '--instance', sys.argv[1]]))\n"
    result = without(["gunicorn"], code, str(tmp_path / "i"))
    assert result.returncode == 1 and "pip install 'sessionward[server]'" in result.stderr, result.stderr[-2000:]


def test_a_broken_installed_module_is_not_reported_as_missing(tmp_path: Path) -> None:
    """Only a missing module means a missing extra; a module failing inside shows its own error."""
    (tmp_path / "swbrokendep.py").write_text("import no_such_module_inside\n")
    code = (
        f"sys.path.insert(0, {str(tmp_path)!r})\n"
        "from sessionward.extras import require\n"
        "try:\n"
        "    require('swbrokendep', 'redis')\n"
        "except ImportError as exc:\n"
        "    print(type(exc).__name__, exc.name)\n"
    )
    result = without([], code)
    assert result.stdout.strip() == "ModuleNotFoundError no_such_module_inside", result.stderr[-2000:]


def test_pyproject_extras_and_a_core_without_drivers() -> None:
    import tomllib

    project = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())["project"]
    core = " ".join(project["dependencies"]).lower()
    for driver in ("redis", "psycopg", "flask", "gunicorn", "starlette", "fastapi", "uvicorn"):
        assert driver not in core, driver
    extras = project["optional-dependencies"]
    assert {"redis", "postgres", "flask", "asgi", "server", "test", "bench"} <= set(extras)
    assert isinstance(project["license"], str)  # SPDX expression: no deprecation warning on install
    for name in ("test", "bench"):
        assert any(r.startswith("sessionward[redis,postgres,flask,asgi,server]") for r in extras[name])
