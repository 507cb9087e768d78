"""The management listener: `/metrics` (Prometheus) and the detailed `/healthz`, apart from the service port.

Like Keycloak's management interface, it listens on loopback by default (`sessionward serve
--management-port 9000 --management-host 127.0.0.1`), in plain HTTP, so metrics and store details are never
public. It runs once, in the gunicorn master (a thread started when the master is ready), and reads every
worker's counters through prometheus_client's multiprocess mode (`PROMETHEUS_MULTIPROC_DIR`, set by `serve`).
The service port keeps only a minimal `/healthz` (status, no details) for load balancers; its `/metrics` is 404.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterable, Mapping
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from .. import metrics
from ..exceptions import StoreUnavailable

__all__ = ["ManagementServer", "health", "health_checks", "management_app"]

Checks = Mapping[str, Callable[[], None]]


def health_checks(store: Any, users: Any) -> dict[str, Callable[[], None]]:
    """The pings of a deployment: the session store and the users/keys database."""
    return {"store": store.ping, "database": users.ping}


def health(checks: Checks) -> tuple[bool, dict[str, str]]:
    """(all reachable, name -> "ok" | "unavailable"). A ping raising `StoreUnavailable` is "unavailable"."""
    results: dict[str, str] = {}
    for name, ping in checks.items():
        try:
            ping()
            results[name] = "ok"
        except StoreUnavailable:
            results[name] = "unavailable"
    return all(v == "ok" for v in results.values()), results


def management_app(checks: Checks) -> Callable[..., Iterable[bytes]]:
    """The WSGI app of the management listener: GET `/metrics` and `/healthz`; anything else 404/405 in the
    service's one error shape."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "")
        status, content_type, headers = "200 OK", "application/json", [("Cache-Control", "no-store")]
        if path not in ("/metrics", "/healthz"):
            status, body = "404 Not Found", _error("not_found", "No such management endpoint.")
        elif method not in ("GET", "HEAD"):
            status, body = "405 Method Not Allowed", _error("method_not_allowed", "Use GET.")
            headers.append(("Allow", "GET, HEAD"))
        elif path == "/metrics":
            body, content_type = metrics.render()
        else:
            healthy, results = health(checks)
            body = json.dumps({"status": "ok" if healthy else "unavailable", "checks": results}).encode()
            if not healthy:
                status = "503 Service Unavailable"
                headers.append(("Retry-After", "5"))
        headers += [("Content-Type", content_type), ("Content-Length", str(len(body)))]
        start_response(status, headers)
        return [b"" if method == "HEAD" else body]

    return app


def _error(code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message}}).encode()


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _IPv6Server(_Server):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # scrapes every few seconds: no access log
        pass


class ManagementServer:
    """The listener, bound at construction (so a taken port fails `serve` at once, raising `OSError`) and
    served from a daemon thread after `start()`."""

    def __init__(self, host: str, port: int, app: Callable[..., Iterable[bytes]]) -> None:
        server_class = _IPv6Server if ":" in host else _Server
        self._httpd = make_server(host, port, app, server_class=server_class, handler_class=_QuietHandler)
        self.port = int(self._httpd.server_address[1])
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, kwargs={"poll_interval": 0.5}, name="sessionward-management",
                daemon=True,
            )
            self._thread.start()

    def close(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
        self._httpd.server_close()
