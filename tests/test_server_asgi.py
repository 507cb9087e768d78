"""server_asgi: the access-log filter (O5), the one-off lifespan run before workers start, the uvicorn settings
both ways of serving share; `serve --asgi` needs the [asgi] extra and no Flask. Serving itself is tested end to
end in tests/e2e/test_asgi_serving.py."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sessionward.exceptions import ConfigError
from sessionward.server_asgi import SafeAccessFilter, SessionwardUvicornWorker, check_lifespan, uvicorn_log_config


def _record(*args: Any) -> logging.LogRecord:
    return logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d', args, None)


def test_access_records_are_escaped() -> None:
    record = _record("127.0.0.1:5000", "GET", "/a?x=\x1b[31mred\u202eevil\nfake line", "1.1", 200)
    assert SafeAccessFilter().filter(record)
    line = record.getMessage()
    assert "\x1b" not in line and "\u202e" not in line and "\n" not in line
    assert line.startswith('127.0.0.1:5000 - "GET /a?x=') and line.endswith('HTTP/1.1" 200')


def test_the_plain_uvicorn_log_config_filters_the_access_log() -> None:
    config = uvicorn_log_config()
    assert config["filters"]["sessionward_safe"]["()"] is SafeAccessFilter
    assert "sessionward_safe" in config["handlers"]["access"]["filters"]


def test_uvicorn_workers_require_the_lifespan_and_leave_forwarded_headers_to_the_app() -> None:
    options = SessionwardUvicornWorker.CONFIG_KWARGS
    assert options["lifespan"] == "on" and options["proxy_headers"] is False and options["server_header"] is False


class LifespanApp:
    def __init__(self, *, fail: str | None = None, crash: bool = False) -> None:
        self.events: list[str] = []
        self.fail, self.crash = fail, crash

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "lifespan"
        while True:
            phase = (await receive())["type"].removeprefix("lifespan.")
            if self.crash:
                raise RuntimeError("store unreachable")
            if phase == self.fail:
                await send({"type": f"lifespan.{phase}.failed", "message": "store unreachable"})
                return
            self.events.append(phase)
            await send({"type": f"lifespan.{phase}.complete"})
            if phase == "shutdown":
                return


def test_check_lifespan_starts_and_stops_the_app_once() -> None:
    app = LifespanApp()
    check_lifespan(app)
    assert app.events == ["startup", "shutdown"]


@pytest.mark.parametrize("fail", ["startup", "shutdown"])
def test_check_lifespan_raises_naming_the_failed_phase(fail: str) -> None:
    with pytest.raises(ConfigError, match=f"lifespan {fail} failed: store unreachable"):
        check_lifespan(LifespanApp(fail=fail))


def test_check_lifespan_passes_the_apps_own_error_on() -> None:
    with pytest.raises(RuntimeError, match="store unreachable"):
        check_lifespan(LifespanApp(crash=True))


def _serve_without(modules: list[str], instance: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    """`sessionward serve --asgi ...` in a fresh interpreter where `modules` cannot be imported, with a taken
    management port: the whole start-up runs (settings, the app's lifespan, the admin, the certificate), then
    serve stops with one line before it would listen."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        prelude = "import sys\n" + "".join(f"sys.modules[{m!r}] = None\n" for m in modules)
        code = prelude + "from sessionward.cli import main\nsys.exit(main(sys.argv[1:]))\n"
        env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONWARD_")}
        return subprocess.run(
            [sys.executable, "-c", code, "serve", *flags, "--instance", str(instance), "--port", "1",
             "--management-port", str(port)],
            check=False, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL, env=env,
        )


def test_serve_asgi_starts_up_without_flask(tmp_path: Path) -> None:
    result = _serve_without(["flask", "werkzeug"], tmp_path / "inst", "--asgi")
    assert result.returncode == 2, result.stderr[-2000:]
    assert "for --management-port" in result.stderr and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert "First start: created user 'admin'" in result.stdout  # it got that far: the app was built and checked


@pytest.mark.parametrize("flags", [("--asgi",), ("--server", "uvicorn")])
def test_serve_asgi_names_its_extra(tmp_path: Path, flags: tuple[str, ...]) -> None:
    result = _serve_without(["uvicorn"], tmp_path / "inst", *flags)
    assert result.returncode != 0
    assert "pip install 'sessionward[asgi]'" in result.stderr and "Traceback" not in result.stderr, result.stderr
