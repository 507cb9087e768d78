"""The README's curl walkthrough of the JSON API, run as written against the real `sessionward serve` over
HTTPS: log in, profile, refresh, log out, replay fails. The script is taken from README.md (the block after
`<!-- walkthrough -->`), with only its three settings lines pointed at the test server. Without curl or jq the
same steps run through `requests`."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from serverproc import ServerProcess, new_http_session

pytestmark = pytest.mark.server

README = Path(__file__).resolve().parents[2] / "README.md"


def walkthrough_script() -> str:
    text = README.read_text()
    match = re.search(r"<!-- walkthrough -->\s*```sh\n(.*?)```", text, re.S)
    assert match, "README.md has no walkthrough block"
    return match.group(1)


def settings_lines(script: str, *, base: str, ca: str, password: str) -> str:
    values = {"BASE": base, "CA": ca, "PASSWORD": password}
    for name, value in values.items():
        script, count = re.subn(rf"^{name}=.*$", f"{name}='{value}'", script, count=1, flags=re.M)
        assert count == 1, f"the walkthrough no longer sets {name}"
    return script


@pytest.mark.skipif(
    not (shutil.which("curl") and shutil.which("jq")) and not os.environ.get("CI"),
    reason="needs curl and jq (apt-get install curl jq; `make test` installs them)",
)
def test_readme_walkthrough_with_curl(server: ServerProcess) -> None:
    assert server.admin_password and "'" not in server.admin_password
    script = settings_lines(walkthrough_script(), base=server.base_url, ca=str(server.certfile),
                            password=server.admin_password)
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", script], check=False, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.count('{"logged_in_as":"admin"}') == 2, out  # before and after the refresh
    lines = [line.strip() for line in out.splitlines()]
    assert "204" in lines, out  # logout
    assert re.search(r"^HTTP/\S+ 401", out, re.M), out  # replay of the access token
    assert re.search(r'^www-authenticate: Bearer realm="sessionward", error="invalid_token"', out, re.M | re.I), out
    assert lines[-2:] == ["401", "401"], out  # both refresh tokens are dead


def test_walkthrough_steps_with_requests(server: ServerProcess) -> None:
    """The same steps without curl (and checked one by one), so the flow is covered on any machine."""
    http = new_http_session(server)
    r = http.post(server.url("/api/login"), json={"username": "admin", "password": server.admin_password}, timeout=10)
    assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store"
    pair = r.json()
    assert pair["token_type"] == "Bearer" and pair["expires_in"] > 0
    bearer = {"Authorization": f"Bearer {pair['access_token']}"}
    assert http.get(server.url("/api/profile"), headers=bearer, timeout=10).json() == {"logged_in_as": "admin"}

    new = http.post(server.url("/api/refresh"), json={"refresh_token": pair["refresh_token"]}, timeout=10).json()
    bearer = {"Authorization": f"Bearer {new['access_token']}"}
    assert http.get(server.url("/api/profile"), headers=bearer, timeout=10).status_code == 200
    sessions = http.get(server.url("/api/sessions"), headers=bearer, timeout=10).json()["sessions"]
    assert any(s["current"] and s["kind"] == "token" for s in sessions)
    listed = server.cli("sessions", "list", "--user", "admin")
    assert listed.returncode == 0 and "token" in listed.stdout  # the CLI sees the same registry

    assert http.post(server.url("/api/logout"), headers=bearer, timeout=10).status_code == 204
    replay = http.get(server.url("/api/profile"), headers=bearer, timeout=10)
    assert replay.status_code == 401
    assert replay.headers["WWW-Authenticate"] == 'Bearer realm="sessionward", error="invalid_token"'
    for spent in (pair["refresh_token"], new["refresh_token"]):
        assert http.post(server.url("/api/refresh"), json={"refresh_token": spent}, timeout=10).status_code == 401
    jwks = http.get(server.url("/.well-known/jwks.json"), timeout=10).json()
    assert jwks["keys"] and all("d" not in k for k in jwks["keys"])
