"""The service port's `/healthz`: a minimal answer for load balancers (status only, no details).

Metrics and the detailed health live on the management listener (`management.py`), never on this port.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from ..flask import state
from .management import health, health_checks

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    st = state()
    healthy, _ = health(health_checks(st.store, st.users))
    response = jsonify({"status": "ok" if healthy else "unavailable"})
    response.status_code = 200 if healthy else 503
    if not healthy:
        response.headers["Retry-After"] = "5"
    return response
