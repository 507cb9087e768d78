"""Security events (ASVS 16): structured records on the `sessionward.security` logger.

Each record has `event` (a short name from `EVENTS`) and `fields` (a dict) as `extra`, and a one-line
message. Callers pass only safe values: user ids and usernames, public session ids, a *hash prefix* of an
address if they like, reasons. Secrets, passwords, tokens and raw cookie ids never go here: `emit` refuses
field names that suggest one, so a careless caller fails in tests rather than leaking in production.
"""

from __future__ import annotations

import logging
from typing import Any

from .metrics import observe_event
from .text import log_safe

logger = logging.getLogger("sessionward.security")

EVENTS = frozenset(
    {
        "login_succeeded",
        "login_failed",
        "login_throttled",
        "logout",
        "session_created",
        "session_rotated",
        "session_revoked",
        "sessions_revoked_all",
        "password_changed",
        "account_disabled",
        "account_created",
        "csrf_failed",
        "token_issued",
        "token_refreshed",
        "token_rejected",
        "token_reuse_detected",
        "token_revoked",
        "key_rotated",
        "key_revoked",
        "store_unavailable",
        "dbsc_registered",
        "dbsc_refresh_refused",
    }
)

_FORBIDDEN = ("password", "secret", "token", "cookie", "key")


def emit(event: str, /, *, level: int = logging.INFO, **fields: Any) -> None:
    """Log one security event. Raises ValueError for an unknown event or a field that smells secret."""
    if event not in EVENTS:
        raise ValueError(f"unknown security event {event!r}")
    for name in fields:
        lowered = name.lower()
        if any(word in lowered for word in _FORBIDDEN) and not lowered.endswith(("_kid", "kind", "_type")):
            raise ValueError(f"security event field {name!r} may carry a secret; log an id instead")
    observe_event(event)
    if logger.isEnabledFor(level):
        text = " ".join(f"{k}={log_safe(v)}" for k, v in sorted(fields.items()))  # client text (a path) escaped: O5
        logger.log(level, "%s %s", event, text, extra={"event": event, "fields": dict(fields)})
