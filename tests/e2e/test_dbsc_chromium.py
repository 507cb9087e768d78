"""C15 with a real browser: Debian's Chromium binds a session to a key it makes, against the framework-free DBSC
core (`sessionward.dbsc`) behind a minimal standard-library HTTPS server (the adapters are wired later).

Chromium 156 on Linux has no TPM-backed key provider; its testing feature
`EnableBoundSessionCredentialsSoftwareKeysForManualTesting` swaps in a software key provider
(components/unexportable_keys/features.cc). DBSC itself is `DeviceBoundSessions` with the parameters
`RequireOriginTrialTokens/false` (no origin-trial token needed) and `RefreshQuota/false`. Chromium acts on
`Secure-Session-Registration` only over a TLS connection without certificate errors, so the test certificate's
key is trusted with `--ignore-certificate-errors-spki-list` (plain `--ignore-certificate-errors` or plain
http://localhost: the header is ignored).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import secrets
import shutil
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from sessionward.dbsc import DBSCError, DBSCPolicy, DBSCServer

pytestmark = pytest.mark.browser

FEATURES = ("DeviceBoundSessions:RequireOriginTrialTokens/false/RefreshQuota/false,"
            "EnableBoundSessionCredentialsSoftwareKeysForManualTesting")
SID = "dbsc-e2e-session"
LOGIN_BINDING = "login-session-public-id"


def _chromium() -> str:
    path = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        from _services import missing_service  # type: ignore[import-not-found]

        missing_service("install chromium (apt-get install chromium) or set CHROMIUM_PATH")
    return path


def _certificate(folder: Path) -> tuple[Path, Path, str]:
    """A self-signed certificate for localhost: (cert file, key file, base64 SHA-256 of its SPKI)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    spki = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return cert_file, key_file, base64.b64encode(hashlib.sha256(spki).digest()).decode()


class Site:
    """The server side: a login page that offers registration, the registration and refresh endpoints, a page
    that reports whether the short cookie came along. Records what happened in `events`."""

    def __init__(self) -> None:
        self.dbsc = DBSCServer(DBSCPolicy(cookie_lifetime=30), challenge_keys=[secrets.token_bytes(32)],
                               cookie_keys=[secrets.token_bytes(32)])
        self.events: list[tuple[str, Any]] = []
        self.key: Any = None
        self.used: dict[str, float] = {}  # the store's use_once, in memory (its reference semantics)
        self.lock = threading.Lock()

    def use_once(self, key: str, until: float, now: float) -> bool:
        with self.lock:
            if self.used.get(key, -1.0) > now:
                return False
            self.used[key] = until
            return True

    def handler(self) -> type[BaseHTTPRequestHandler]:
        site = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, headers: list[tuple[str, str]], body: bytes = b"") -> None:
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _cookie(self, now: float) -> tuple[str, str]:
                name, value, _ = site.dbsc.bound_cookie(session_identifier=SID, now=now)
                # a 3-second cookie, so the browser refreshes many times during the test
                return "Set-Cookie", f"{name}={value}; Max-Age=3; {site.dbsc.policy.cookie_attributes}"

            def do_GET(self) -> None:
                if self.path == "/login":
                    offer = site.dbsc.registration_header(binding=LOGIN_BINDING, now=time.time())
                    page = (b"<html><body><script>setInterval(() => fetch('/protected'), 1000)</script>"
                            b"</body></html>")
                    self._send(200, [("Content-Type", "text/html"), ("Secure-Session-Registration", offer)], page)
                elif self.path == "/protected":
                    bound = site.dbsc.policy.cookie_name in (self.headers.get("Cookie") or "")
                    site.events.append(("protected", bound))
                    self._send(200, [("Content-Type", "text/plain")], b"ok")
                else:
                    self._send(404, [])

            def do_POST(self) -> None:
                now = time.time()
                responses = self.headers.get_all("Secure-Session-Response") or []
                try:
                    if self.path == "/dbsc/register":
                        reg = site.dbsc.verify_registration(responses=responses, binding=LOGIN_BINDING, now=now)
                        if not site.use_once(reg.replay_key, reg.replay_until, now):
                            raise DBSCError("registration replayed")
                        site.key = reg.key
                        site.events.append(("registered", reg.key.thumbprint))
                        body = json.dumps(site.dbsc.session_instructions(session_identifier=SID)).encode()
                        self._send(200, [("Content-Type", "application/json"), self._cookie(now)], body)
                    elif self.path == "/dbsc/refresh":
                        sid = site.dbsc.session_identifier(self.headers.get_all("Sec-Secure-Session-Id") or [])
                        proof = site.dbsc.verify_refresh(session_identifier=sid, jwk=site.key.jwk, alg=site.key.alg,
                                                         responses=responses, now=now)
                        if not site.use_once(proof.replay_key, proof.replay_until, now):
                            raise site.dbsc.replayed(proof, now=now)
                        site.events.append(("refreshed", responses[0]))
                        challenge = site.dbsc.challenge_header(session_identifier=SID, now=now)
                        self._send(200, [self._cookie(now), ("Secure-Session-Challenge", challenge)])
                    else:
                        self._send(404, [])
                except DBSCError as err:
                    site.events.append(("refused", err.reason))
                    self._send(err.status, list(err.headers.items()))

        return Handler


def test_C15_chromium_binds_and_refreshes_a_session(tmp_path: Path) -> None:
    chromium = _chromium()
    cert, key, spki = _certificate(tmp_path)
    site = Site()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), site.handler())
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"https://localhost:{httpd.server_address[1]}/login"
    browser = subprocess.Popen(
        [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
         f"--user-data-dir={tmp_path / 'profile'}", f"--ignore-certificate-errors-spki-list={spki}",
         f"--enable-features={FEATURES}", url],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 90  # a patience limit on a loaded machine, not a speed assertion
        while time.monotonic() < deadline and sum(1 for kind, _ in site.events if kind == "refreshed") < 3:
            time.sleep(0.5)
    finally:
        browser.terminate()
        browser.wait(timeout=30)
        httpd.shutdown()
    kinds = [kind for kind, _ in site.events]
    assert "registered" in kinds, f"Chromium never registered: {site.events[:10]}"
    refreshed = [value for kind, value in site.events if kind == "refreshed"]
    assert len(refreshed) >= 3, f"Chromium did not keep refreshing: {site.events[-10:]}"
    assert site.key.alg == "ES256"
    assert ("protected", True) in site.events  # the short cookie rode along once renewed
    # every refresh signed a new challenge; one sent again is refused by the replay check
    assert len(set(refreshed)) == len(refreshed)
    now = time.time()
    again = site.dbsc.verify_refresh(session_identifier=SID, jwk=site.key.jwk, alg=site.key.alg,
                                     responses=[refreshed[-1]], now=now)
    assert not site.use_once(again.replay_key, again.replay_until, now)
