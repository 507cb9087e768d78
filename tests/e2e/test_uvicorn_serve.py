"""`sessionward serve --server uvicorn`: the ASGI service under uvicorn alone (no gunicorn), with the same
instance folder, certificate, management listener and start-up as the other flavours; one worker serves in the
`serve` process itself, more run under uvicorn's supervisor. The whole e2e suite runs against gunicorn's two
flavours; this checks that the uvicorn-only way works end to end."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import requests
from serverproc import ServerProcess, login, new_http_session, require_asgi

pytestmark = pytest.mark.server

COOKIE = "__Host-session"


@pytest.fixture(scope="module", params=[1, 2], ids=["one-process", "two-workers"])
def uvicorn_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    require_asgi()
    with ServerProcess(instance=tmp_path_factory.mktemp("uvicorn"), flavour="uvicorn", workers=request.param) as server:
        yield server


def test_serves_the_service_over_tls_with_its_management_listener(uvicorn_server: ServerProcess) -> None:
    assert "(ASGI, uvicorn;" in uvicorn_server.output_text()
    assert uvicorn_server.admin_password
    http = new_http_session(uvicorn_server)
    assert login(http, uvicorn_server, "admin", uvicorn_server.admin_password).status_code == 303
    page = http.get(uvicorn_server.url("/dashboard"), timeout=10, allow_redirects=False)
    assert page.status_code == 200 and "no-store" in page.headers["Cache-Control"]
    assert "server" not in {k.lower() for k in page.headers}
    health = requests.get(uvicorn_server.management_url("/healthz"), timeout=10)
    assert health.json() == {"status": "ok", "checks": {"store": "ok", "database": "ok"}}


def test_workers_are_the_servers_children(uvicorn_server: ServerProcess) -> None:
    children = uvicorn_server.worker_pids()
    if uvicorn_server.workers == 1:
        assert children == []  # the serve process serves
    else:
        assert len(children) >= uvicorn_server.workers  # uvicorn's supervised workers


def test_stop_leaves_no_process(uvicorn_server: ServerProcess) -> None:  # the module's last test
    pgid = uvicorn_server.pgid
    assert pgid is not None
    assert uvicorn_server.stop() == 0, uvicorn_server.output_text()[-2000:]
    with pytest.raises(ProcessLookupError):
        os.killpg(pgid, 0)
    with pytest.raises(requests.ConnectionError):
        requests.get(uvicorn_server.url("/healthz"), verify=uvicorn_server.verify, timeout=2)
