"""The framework-neutral parts of the reference service, shared by the Flask app and the ASGI app: redirect
targets, form and JSON body checks, the API's errors and the rows of the sessions list. No web framework."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..clock import iso_utc
from ..device_binding import is_device_bound
from ..exceptions import ConfigError, PermissionDenied, SessionwardError, ValidationError
from ..jsontext import strict_loads
from ..stores import SessionRecord
from ..text import check_text, text_problem
from .devices import describe_user_agent
from .instance import database_urls, load_secrets

__all__ = [
    "JWKS_MAX_AGE", "MAX_BODY", "MAX_FIELD", "MAX_NEXT", "MalformedJSON", "WrongPassword",
    "api_session_rows", "form_field", "is_json_mimetype", "isotime", "parse_json", "safe_next", "service_settings",
    "string_fields", "web_session_rows",
]

MAX_FIELD = 1024
MAX_NEXT = 512  #: a longer ?next= target is ignored
JWKS_MAX_AGE = 60  # seconds: verifiers re-fetch on an unknown kid anyway


class MalformedJSON(SessionwardError):
    """The body is not a JSON document (400)."""

    code = "malformed_json"


class WrongPassword(PermissionDenied):
    """The current password given to change it is wrong (403; not 401: the token itself is fine)."""

    code = "wrong_password"

    def __init__(self) -> None:
        super().__init__("The current password is wrong.")


def isotime(value: float) -> str:
    return dt.datetime.fromtimestamp(value, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def safe_next(target: str | None) -> str:
    """Only same-site paths: no scheme, no host, no `//` or backslash tricks (open redirect)."""
    if not target or text_problem(target, max_length=MAX_NEXT) is not None:  # CR/LF would reach the Location header
        return "/dashboard"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/dashboard"
    return target


def form_field(value: str, name: str) -> str:
    """A form field, checked at the edge (422 for control characters or past MAX_FIELD, O5)."""
    return check_text(value, field=name, max_length=MAX_FIELD)


def is_json_mimetype(mimetype: str) -> bool:
    return mimetype == "application/json" or (mimetype.startswith("application/") and mimetype.endswith("+json"))


def parse_json(raw: bytes, fields: Mapping[str, bool], *, optional_body: bool = False) -> dict[str, str]:
    """`raw` as a JSON object of exactly these string `fields`. Raises `MalformedJSON` (400), `ValidationError`
    (422). With `optional_body`, a blank body counts as `{}`."""
    if not raw.strip() and optional_body:
        return {}
    try:
        data = strict_loads(raw)
    except (ValueError, RecursionError):  # JSONDecodeError, UnicodeDecodeError, duplicates, NaN, deep nesting
        raise MalformedJSON("The body is not valid JSON.") from None
    return string_fields(data, fields)


def string_fields(data: object, fields: Mapping[str, bool]) -> dict[str, str]:
    """`data` as an object of exactly these string `fields`. Raises `ValidationError` (422)."""
    if not isinstance(data, dict):
        raise ValidationError("The body must be a JSON object.")
    unknown = sorted(set(data) - set(fields))
    if unknown:
        name = unknown[0] if text_problem(unknown[0], max_length=64) is None else "?"  # never echo raw text
        raise ValidationError(f"Unknown field {name!r}.", field=name)
    out: dict[str, str] = {}
    for name, required in fields.items():
        if name not in data:
            if required:
                raise ValidationError(f"Field {name!r} is required.", field=name)
            continue
        if not isinstance(data[name], str):
            raise ValidationError(f"Field {name!r} must be a string.", field=name)
        # 422 for surrogates and control characters (O5); lengths are the consumer's: a junk token or credential
        # of any size is a 401 like any other, a too-long new password a 422 weak_password
        out[name] = check_text(data[name], field=name, max_length=None)
    return out


def api_session_rows(records: Iterable[SessionRecord], current_id: str) -> list[dict[str, Any]]:
    """The API's sessions list: the newest client of each session or token family."""
    rows = []
    for r in records:
        last = r.data.get("last_client") if isinstance(r.data, Mapping) else None
        user_agent = last.get("user_agent", r.user_agent) if isinstance(last, Mapping) else r.user_agent
        ip = last.get("ip", r.ip) if isinstance(last, Mapping) else r.ip
        rows.append({
            "id": r.id,
            "kind": r.kind,
            "device": describe_user_agent(str(user_agent)),
            "address": str(ip),
            "created_at": iso_utc(r.created_at),
            "last_seen": iso_utc(r.last_seen),
            "current": r.id == current_id,
            "device_bound": is_device_bound(r),
            "dpop_bound": _dpop_bound(r),
        })
    return rows


def _dpop_bound(record: SessionRecord) -> bool:
    """A token family bound to a client key (RFC 9449; the thumbprint stays server-side, in the record)."""
    from ..tokens.service import family_jkt  # the token modules load late (see `sessionward.settings`)

    return family_jkt(record) is not None


def web_session_rows(records: Iterable[SessionRecord], current_id: str) -> list[dict[str, Any]]:
    """The sessions page's rows."""
    return [
        {"record": r, "device": describe_user_agent(r.user_agent), "current": r.id == current_id,
         "device_bound": is_device_bound(r), "dpop_bound": _dpop_bound(r)}
        for r in records
    ]


MAX_BODY = 64 * 1024


def service_settings(path: Path, config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The reference service's settings, for the Flask and the ASGI app alike: the instance folder's database
    URLs and secrets (the environment winning), the other known `SESSIONWARD_*` names of the environment, then
    `config` (tests). Raises `ConfigError` (naming the setting); `DEBUG` is refused."""
    from ..settings import environment_settings

    keys = load_secrets(path)
    store_url, database_url = database_urls(path)
    settings: dict[str, Any] = {
        "SESSIONWARD_STORE_URL": store_url,
        "SESSIONWARD_DATABASE_URL": database_url,
        "SESSIONWARD_CSRF_KEY": keys.csrf_key,
        "SESSIONWARD_REFRESH_KEY": keys.refresh_key,
        "SESSIONWARD_KEK": keys.kek,
        "SESSIONWARD_DBSC_CHALLENGE_KEY": keys.dbsc_challenge_key,
        "SESSIONWARD_DBSC_COOKIE_KEY": keys.dbsc_cookie_key,
        "SESSIONWARD_DPOP_NONCE_KEY": keys.dpop_nonce_key,
        "MAX_CONTENT_LENGTH": MAX_BODY,
    }
    for name, value in environment_settings().items():
        settings.setdefault(name, value)  # the instance's URLs and secrets already took the environment's
    settings.setdefault("SESSIONWARD_DBSC", True)  # the reference service binds sessions where browsers can
    settings.update(config or {})
    if settings.get("DEBUG"):
        raise ConfigError("DEBUG", "the reference service never runs Flask's debugger")
    return settings
