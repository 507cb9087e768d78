"""O6 (instance files private whichever command made them; `serve` refuses a loose instance), the management
listener (metrics and detailed health off the service port, loopback only), the development certificate's
names, and the login nonce cookie's caching. Real subprocesses and the real server throughout."""

from __future__ import annotations

import ipaddress
import os
import socket
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from cryptography import x509
from serverproc import FLAVOURS, ServerProcess, free_port, new_http_session, run_cli, sessionward_command

pytestmark = pytest.mark.server


def loose(root: Path) -> list[str]:
    """Every file or folder under `root` (itself included) that group or others may access."""
    found = []
    for item in [root, *root.rglob("*")]:
        mode = stat.S_IMODE(item.lstat().st_mode)
        if mode & 0o077:
            found.append(f"{item.relative_to(root.parent)} {mode:o}")
    return found


def run_under_umask_022(*args: str, instance: Path, input: str | None = None) -> subprocess.CompletedProcess[str]:
    old = os.umask(0o022)  # the child inherits it: the usual login-shell umask
    try:
        return run_cli(*args, instance=instance, input=input)
    finally:
        os.umask(old)


def test_O6_cli_under_umask_022_creates_only_private_files(tmp_path: Path) -> None:
    instance = tmp_path / "fresh"
    add = run_under_umask_022("users", "add", "carol", "--password-stdin", instance=instance,
                              input="o6-" + os.urandom(8).hex() + "\n")
    assert add.returncode == 0, add.stderr
    listed = run_under_umask_022("sessions", "list", instance=instance)
    assert listed.returncode == 0, listed.stderr
    rotated = run_under_umask_022("keys", "rotate", instance=instance)
    assert rotated.returncode == 0, rotated.stderr
    assert (instance / "sessionward.db").exists() and (instance / "secrets.json").exists()
    assert loose(instance) == []


def start_failure(instance: Path, flavour: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*sessionward_command(), "serve", "--instance", str(instance), "--port", str(free_port()),
         "--management-port", str(free_port()), *FLAVOURS[flavour]],
        check=False, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
        env={k: v for k, v in os.environ.items() if not k.startswith("SESSIONWARD_")},
    )


@pytest.mark.parametrize("name", [".", "sessionward.db", "secrets.json", "tls-key.pem"])
def test_O6_serve_refuses_a_loose_instance_naming_the_path(tmp_path: Path, name: str, flavour: str) -> None:
    instance = tmp_path / "inst"
    made = run_cli("users", "add", "dave", "--password-stdin", instance=instance,
                   input="o6-" + os.urandom(8).hex() + "\n")
    assert made.returncode == 0, made.stderr
    key = instance / "tls-key.pem"
    key.write_bytes(b"not used: serve refuses first\n")
    key.chmod(0o600)
    target = (instance / name).resolve()
    target.chmod(0o755 if target.is_dir() else 0o644)
    result = start_failure(instance, flavour)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(target) in lines[0], result.stderr
    assert "Traceback" not in result.stderr + result.stdout


# -- management listener ---------------------------------------------------------------------------

def non_loopback_address() -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # no packet is sent: only picks the outgoing interface
            address = s.getsockname()[0]
        except OSError:
            return None
    return None if ipaddress.ip_address(address).is_loopback else address


@pytest.fixture(scope="module")
def public_server(tmp_path_factory: pytest.TempPathFactory, flavour: str) -> Iterator[ServerProcess]:
    # the service on every address (the last --host wins); the tests talk to it on loopback
    # two workers: the management listener (in the master) must see what either of them counted
    with ServerProcess(instance=tmp_path_factory.mktemp("ops"), workers=2, extra_args=["--host", "0.0.0.0"],
                       flavour=flavour) as server:
        yield server


def test_metrics_answer_404_on_the_service_port_and_200_on_management(public_server: ServerProcess) -> None:
    http = new_http_session(public_server)
    assert http.get(public_server.url("/login"), timeout=10).status_code == 200
    main = http.get(public_server.url("/metrics"), timeout=10)
    assert main.status_code == 404 and "sessionward_" not in main.text
    health = http.get(public_server.url("/healthz"), timeout=10)
    assert health.status_code == 200 and health.json() == {"status": "ok"}  # no details on the service port
    metrics = requests.get(public_server.management_url("/metrics"), timeout=10)
    assert metrics.status_code == 200 and "sessionward_security_events_total" in metrics.text
    detailed = requests.get(public_server.management_url("/healthz"), timeout=10)
    assert detailed.json() == {"status": "ok", "checks": {"store": "ok", "database": "ok"}}


def failed_logins(server: ServerProcess) -> float:
    text = requests.get(server.management_url("/metrics"), timeout=10).text
    return sum(float(line.split()[-1]) for line in text.splitlines()
               if line.startswith('sessionward_logins_total{outcome="failed"}'))


def test_management_metrics_count_every_worker(public_server: ServerProcess) -> None:
    before = failed_logins(public_server)
    attempts = 6
    for _ in range(attempts):  # a new connection each: gunicorn hands them to either worker
        r = requests.post(public_server.url("/api/login"), json={"username": "nobody", "password": "wrong password"},
                          verify=public_server.verify, timeout=30)
        assert r.status_code == 401
    assert failed_logins(public_server) == before + attempts


# that address is not in the certificate
@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_management_listener_is_not_reachable_off_loopback(public_server: ServerProcess) -> None:
    others = ["127.0.0.2"]  # another loopback address: the listener is bound to 127.0.0.1 only
    address = non_loopback_address()
    if address is not None:
        others.append(address)
        # ...while the service itself, bound to 0.0.0.0, does answer there
        answer = requests.get(f"https://{address}:{public_server.port}/healthz", verify=False, timeout=10)
        assert answer.status_code == 200
    for host in others:
        with pytest.raises(OSError):
            socket.create_connection((host, public_server.management_port), timeout=5).close()


# -- certificate and login nonce -------------------------------------------------------------------

def test_development_certificate_names_only_what_it_serves(public_server: ServerProcess) -> None:
    cert = x509.load_pem_x509_certificate(public_server.certfile.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    names = set(san.get_values_for_type(x509.DNSName))
    addresses = {str(a) for a in san.get_values_for_type(x509.IPAddress)}
    assert names == {"localhost"}
    assert addresses == {"127.0.0.1", "::1"}  # bound to 0.0.0.0: no unspecified address, no test hosts


def test_login_nonce_cookie_response_is_not_cacheable(public_server: ServerProcess) -> None:
    r = new_http_session(public_server).get(public_server.url("/login"), timeout=10)
    assert "__Host-login-csrf" in r.headers.get("Set-Cookie", "")
    assert "no-store" in r.headers.get("Cache-Control", ""), r.headers


def test_a_taken_management_port_stops_serve_with_one_line(tmp_path: Path, flavour: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [*sessionward_command(), "serve", "--instance", str(tmp_path / "inst"), "--port", str(free_port()),
             "--management-port", str(port), *FLAVOURS[flavour]],
            check=False, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
            env={k: v for k, v in os.environ.items() if not k.startswith("SESSIONWARD_")},
        )
    assert result.returncode != 0
    assert f"127.0.0.1:{port}" in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
