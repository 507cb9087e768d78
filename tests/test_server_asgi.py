"""server_asgi: the access-log filter (O5), the one-off lifespan run before workers start, and the uvicorn
settings both ways of serving share. Serving itself is tested end to end in tests/e2e/test_asgi_serving.py."""

from __future__ import annotations

import logging
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
