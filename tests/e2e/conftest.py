"""Fixtures for end-to-end tests: the real `sessionward serve` command and a real Chromium.

- `flavour` (module, parametrized "wsgi" / "asgi"): every test that uses a server runs against both the Flask
  service (gunicorn gthread workers) and the ASGI service (`serve --asgi`: gunicorn with uvicorn workers), so
  the two cannot drift apart. pytest groups a module's tests by flavour, so each flavour's servers start once
  per module. `-k wsgi` / `-k asgi` picks one.
- `server` (module): one `sessionward serve` over HTTPS on a free port with a temporary instance folder.
- `start_server` (module): factory for further servers in the module (e.g. other settings), of the module's
  flavour unless `flavour=` says otherwise; all are stopped at the end of the module's flavour.
- `playwright_instance`, `browser` (module; see below): Debian's Chromium driven by Playwright (see shared/BROWSER.md);
  `CHROMIUM_PATH` overrides the binary. Missing Chromium skips, or fails when `CI` is set.
- `context`, `page` (function): a fresh browser context that ignores the self-signed certificate.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from serverproc import ServerProcess, require_asgi

CHROMIUM_HINT = "install chromium (apt-get install chromium) or set CHROMIUM_PATH"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--host-resolver-rules=MAP app.test 127.0.0.1, MAP attacker.test 127.0.0.1",
]


def chromium_path() -> str | None:
    """`CHROMIUM_PATH` if set (and only it: a wrong setting is reported, not silently replaced), else Debian's."""
    override = os.environ.get("CHROMIUM_PATH")
    candidates = [override] if override else [shutil.which("chromium"), "/usr/bin/chromium"]
    for candidate in candidates:
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def _missing(reason: str) -> None:
    """Fail under CI, skip with the reason elsewhere (the one rule for every missing service)."""
    from _services import missing_service  # type: ignore[import-not-found]

    missing_service(reason)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """On a failure, add what every server of this run printed last (a crash or a 500 shows up there)."""
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for proc in list(ServerProcess.started):
            report.sections.append((f"sessionward serve {proc.base_url}", proc.describe()))


# -- the real server ---------------------------------------------------------------------------

@pytest.fixture(scope="module", params=["wsgi", "asgi"])
def flavour(request: pytest.FixtureRequest) -> str:
    """How the module's servers serve: "wsgi" (Flask) or "asgi" (Starlette under uvicorn workers)."""
    if request.param != "wsgi":
        require_asgi()
    return str(request.param)


@pytest.fixture(scope="module")
def start_server(tmp_path_factory: pytest.TempPathFactory, flavour: str) -> Iterator[Callable[..., ServerProcess]]:
    """`start_server(env={...}, workers=1)` -> a started `ServerProcess` with a fresh instance folder."""
    started: list[ServerProcess] = []

    def start(**options: Any) -> ServerProcess:
        options.setdefault("instance", tmp_path_factory.mktemp("instance"))
        options.setdefault("flavour", flavour)
        proc = ServerProcess(**options)
        started.append(proc)
        return proc.start()

    yield start
    for proc in reversed(started):
        proc.stop()


@pytest.fixture(scope="module")
def server(start_server: Callable[..., ServerProcess]) -> ServerProcess:
    proc = start_server()
    assert proc.admin_password, f"no admin password on stdout:\n{proc.output_text()}"
    return proc


# -- the real browser --------------------------------------------------------------------------

# Module scope, not session: Playwright's sync API keeps its event loop marked as running on the main thread
# while it is started, so every later `asyncio.run` in this process (the async stores' and core's tests) would
# fail with "cannot be called from a running event loop". The browser tests live in one module.
@pytest.fixture(scope="module")
def playwright_instance() -> Iterator[Any]:
    path = chromium_path()
    if path is None:
        where = os.environ.get("CHROMIUM_PATH") or "/usr/bin/chromium"
        _missing(f"{CHROMIUM_HINT} (no executable at {where})")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("install playwright (pip install playwright)")
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="module")
def browser(playwright_instance: Any) -> Iterator[Any]:
    path = chromium_path()
    try:
        b = playwright_instance.chromium.launch(executable_path=path, args=CHROMIUM_ARGS, timeout=30_000)
    except Exception as exc:  # playwright.Error: the binary exists but does not start
        _missing(f"{CHROMIUM_HINT} ({path} did not start: {str(exc).splitlines()[0]})")
    yield b
    b.close()


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    ctx = browser.new_context(ignore_https_errors=True)
    ctx.set_default_timeout(10_000)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context: Any) -> Any:
    return context.new_page()


@pytest.fixture
def screenshot_dir(tmp_path: Path) -> Path:
    """Where screenshots go: a tmp dir, or `E2E_SCREENSHOT_DIR` to keep them for a look."""
    keep = os.environ.get("E2E_SCREENSHOT_DIR")
    d = Path(keep) if keep else tmp_path / "screenshots"
    d.mkdir(parents=True, exist_ok=True)
    return d
