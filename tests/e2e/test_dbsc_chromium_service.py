"""C15 end to end: Debian's Chromium signs in through the real reference service's /login page (`sessionward
serve`, WSGI and ASGI), gets its session device-bound (DBSC) and keeps it alive by refreshing the short cookie.

The flags are those of `test_dbsc_chromium.py`: DBSC without origin-trial tokens or refresh quota, the testing
software key provider (Linux has no TPM-backed one), and the service's self-signed certificate trusted by its
SPKI hash (Chromium acts on `Secure-Session-Registration` only over TLS without certificate errors). The short
cookie lives 30 seconds here (`SESSIONWARD_DBSC_COOKIE_LIFETIME`, its minimum), so a refresh must happen for the
dashboard to stay signed in after a wait."""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from serverproc import ServerProcess

pytestmark = [pytest.mark.browser, pytest.mark.server]

FEATURES = ("DeviceBoundSessions:RequireOriginTrialTokens/false/RefreshQuota/false,"
            "EnableBoundSessionCredentialsSoftwareKeysForManualTesting")
SHORT = "__Host-sw_dbsc"
PASSWORD = "chromium-dbsc-" + "x" * 12


def chromium() -> str:
    """As `test_dbsc_chromium.py` finds it (not through `conftest`: which conftest that names depends on the
    run)."""
    path = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        from _services import missing_service  # type: ignore[import-not-found]

        missing_service("install chromium (apt-get install chromium) or set CHROMIUM_PATH")
    return path


def spki_hash(certfile: Any) -> str:
    cert = x509.load_pem_x509_certificate(certfile.read_bytes())
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


@pytest.fixture(scope="module")
def service(start_server: Callable[..., ServerProcess]) -> ServerProcess:
    proc = start_server(env={"SESSIONWARD_DBSC_COOKIE_LIFETIME": "30"})
    proc.add_user("carol", PASSWORD)
    return proc


@pytest.fixture(scope="module")
def dbsc_browser(playwright_instance: Any, service: ServerProcess) -> Iterator[Any]:
    args = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-quic", f"--enable-features={FEATURES}",
            f"--ignore-certificate-errors-spki-list={spki_hash(service.certfile)}"]
    b = playwright_instance.chromium.launch(executable_path=chromium(), args=args, timeout=30_000)
    yield b
    b.close()


def short_cookie(context: Any) -> str | None:
    return next((c["value"] for c in context.cookies() if c["name"] == SHORT), None)


def test_C15_chromium_binds_its_session_through_the_real_login(dbsc_browser: Any, service: ServerProcess) -> None:
    context = dbsc_browser.new_context()  # no ignore_https_errors: the SPKI flag makes the certificate valid
    context.set_default_timeout(20_000)
    try:
        page = context.new_page()
        base = f"https://localhost:{service.port}"
        page.goto(base + "/login")
        page.fill("input[name=username]", "carol")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url("**/dashboard")
        deadline = time.monotonic() + 60  # patience on a loaded machine, not a speed assertion
        while time.monotonic() < deadline and short_cookie(context) is None:
            time.sleep(0.5)
        first = short_cookie(context)
        assert first is not None, "Chromium never registered (no short cookie)"
        page.goto(base + "/sessions")
        assert "device-bound" in page.content()
        # past the short cookie's lifetime: Chromium must have refreshed (signing a challenge) to stay signed in
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and short_cookie(context) in (first, None):
            time.sleep(1)
        renewed = short_cookie(context)
        assert renewed not in (first, None), "Chromium did not refresh the short cookie"
        time.sleep(31)
        page.goto(base + "/dashboard")
        assert page.url.endswith("/dashboard"), page.url  # still signed in: the browser refreshed on the way
        assert short_cookie(context) not in (first, renewed, None)
    finally:
        context.close()
