"""Operations endpoints: `/healthz` (store reachability) and `/metrics` (Prometheus)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from .. import metrics
from ..exceptions import StoreUnavailable
from ..flask import state

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    st = state()
    checks = {}
    for name, ping in (("store", st.store.ping), ("database", st.users.ping)):
        try:
            ping()
            checks[name] = "ok"
        except StoreUnavailable:
            checks[name] = "unavailable"
    healthy = all(v == "ok" for v in checks.values())
    response = jsonify({"status": "ok" if healthy else "unavailable", "checks": checks})
    response.status_code = 200 if healthy else 503
    if not healthy:
        response.headers["Retry-After"] = "5"
    return response


@bp.get("/metrics")
def prometheus_metrics() -> Response:
    body, content_type = metrics.render()
    return Response(body, content_type=content_type)
