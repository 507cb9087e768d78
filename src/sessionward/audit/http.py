"""The audit's only way out: an HTTP client locked to one origin, rate-limited, with a request budget.

Standard library only (`http.client` + `ssl`). Every request goes to the target origin or raises
`OriginError`; every request counts against the run's `--max-requests` and the running probe's own budget
(`BudgetExceeded`); requests are spaced to at most `rate` per second. Redirects are never followed (the
probes look at them). A small cookie jar per `Browser` keeps what the server set, so a probe can act like
one browser, replay an old cookie, or plant one.
"""

from __future__ import annotations

import http.client
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import TypedDict, Unpack
from urllib.parse import urlencode, urljoin, urlsplit

__all__ = [
    "AuditHTTPError",
    "Browser",
    "BudgetExceeded",
    "Client",
    "OriginError",
    "RequestOptions",
    "Response",
    "SetCookie",
    "parse_set_cookie",
]

USER_AGENT = "sessionward-audit/1 (+https://github.com/sessionward)"
MAX_BODY = 512 * 1024


class AuditHTTPError(Exception):
    """The target could not be reached or answered something that is not HTTP."""


class OriginError(AuditHTTPError):
    """A request was about to leave the target origin (never sent)."""


class BudgetExceeded(Exception):
    """The probe's or the run's request budget is spent (the request was not sent)."""


class RequestOptions(TypedDict, total=False):
    """The keyword options of `Browser.request` (and of `get`/`post`)."""

    headers: Mapping[str, str] | None
    form: Mapping[str, str] | Iterable[tuple[str, str]] | None
    json_body: object
    body: bytes | None
    bearer: str | None


@dataclass(frozen=True)
class SetCookie:
    """One `Set-Cookie` header, parsed (attribute names lower-cased; flags map to "")."""

    name: str
    value: str
    attributes: dict[str, str]
    raw: str

    def has(self, attribute: str) -> bool:
        return attribute.lower() in self.attributes

    def get(self, attribute: str) -> str | None:
        return self.attributes.get(attribute.lower())

    @property
    def deletes(self) -> bool:
        """True when this header removes the cookie (empty value, Max-Age <= 0 or an Expires in the past)."""
        max_age = self.get("max-age")
        if max_age is not None:
            try:
                return int(max_age) <= 0
            except ValueError:
                return False
        expires = self.get("expires")
        if expires:
            from email.utils import parsedate_to_datetime

            try:
                return parsedate_to_datetime(expires).timestamp() < time.time()
            except (TypeError, ValueError):
                return False
        return self.value == ""


def parse_set_cookie(header: str) -> SetCookie:
    first, *rest = header.split(";")
    name, _, value = first.partition("=")
    attributes: dict[str, str] = {}
    for item in rest:
        key, _, val = item.strip().partition("=")
        if key:
            attributes[key.strip().lower()] = val.strip()
    return SetCookie(name.strip(), value.strip().strip('"'), attributes, header)


@dataclass
class Response:
    method: str
    url: str
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes
    request_headers: dict[str, str]
    elapsed: float
    request_body: bytes | None = None

    def header(self, name: str) -> str | None:
        name = name.lower()
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None

    def header_all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    @property
    def set_cookies(self) -> list[SetCookie]:
        return [parse_set_cookie(v) for v in self.header_all("Set-Cookie")]

    @property
    def is_success(self) -> bool:
        """A 2xx answer."""
        return HTTPStatus.OK <= self.status < HTTPStatus.MULTIPLE_CHOICES

    @property
    def is_redirection(self) -> bool:
        """A 3xx answer."""
        return HTTPStatus.MULTIPLE_CHOICES <= self.status < HTTPStatus.BAD_REQUEST

    @property
    def is_error(self) -> bool:
        """A 4xx or 5xx answer."""
        return self.status >= HTTPStatus.BAD_REQUEST

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    @property
    def location(self) -> str | None:
        return self.header("Location")

    def json(self) -> object:
        import json

        return json.loads(self.body)


@dataclass
class Client:
    """One audit run's connection to `origin` (scheme://host[:port])."""

    origin: str
    rate: float = 4.0
    max_requests: int = 400
    timeout: float = 10.0
    insecure: bool = False
    cacert: str | None = None
    on_request: Callable[[Response], None] | None = None
    monotonic: Callable[[], float] = time.monotonic  #: injectable, with `sleep`, to test the pacing without waiting
    sleep: Callable[[float], None] = time.sleep
    sent: int = 0
    _probe_budget: int | None = None
    _probe_sent: int = 0
    _next_at: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        parts = urlsplit(self.origin)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {self.origin!r}")
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.origin = f"{parts.scheme}://{parts.netloc}"
        if self.rate <= 0:
            raise ValueError("rate must be positive")
        self._context: ssl.SSLContext | None = None
        if self.scheme == "https":
            ctx = ssl.create_default_context(cafile=self.cacert)
            if self.insecure:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            self._context = ctx

    # -- budgets -----------------------------------------------------------------------------------
    def start_probe(self, budget: int) -> None:
        self._probe_budget, self._probe_sent = budget, 0

    def end_probe(self) -> int:
        sent, self._probe_budget, self._probe_sent = self._probe_sent, None, 0
        return sent

    def _charge(self) -> None:
        if self.sent >= self.max_requests:
            raise BudgetExceeded(f"--max-requests {self.max_requests} reached")
        if self._probe_budget is not None and self._probe_sent >= self._probe_budget:
            raise BudgetExceeded(f"probe budget of {self._probe_budget} requests spent")
        self.sent += 1
        self._probe_sent += 1

    def _pace(self) -> None:
        with self._lock:
            now = self.monotonic()
            wait = self._next_at - now
            self._next_at = max(now, self._next_at) + 1.0 / self.rate
        if wait > 0:
            self.sleep(wait)

    # -- requests ---------------------------------------------------------------------------------
    def url(self, path: str) -> str:
        return urljoin(self.origin + "/", path)

    def check_origin(self, url: str) -> str:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        if parts.scheme != self.scheme or parts.hostname != self.host or port != self.port:
            raise OriginError(f"refusing to contact {parts.scheme}://{parts.netloc}: only {self.origin} is audited")
        return parts.path + (f"?{parts.query}" if parts.query else "") or "/"

    def request(
        self, method: str, path: str, *, headers: Mapping[str, str] | None = None, body: bytes | None = None
    ) -> Response:
        url = self.url(path)
        target = self.check_origin(url) or "/"
        self._charge()
        self._pace()
        hdrs = {"User-Agent": USER_AGENT, "Accept": "*/*", "Connection": "close"}
        hdrs.update(headers or {})
        if body is not None:
            hdrs.setdefault("Content-Length", str(len(body)))
        conn: http.client.HTTPConnection
        if self._context is not None:
            conn = http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout, context=self._context)
        else:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        started = time.perf_counter()
        try:
            conn.request(method, target, body=body, headers=hdrs)
            raw = conn.getresponse()
            data = raw.read(MAX_BODY)
            resp = Response(method, url, raw.status, raw.reason, list(raw.getheaders()), data, hdrs,
                            time.perf_counter() - started, body)
        except ssl.SSLCertVerificationError as exc:
            raise AuditHTTPError(f"{self.origin}: certificate not trusted ({exc.verify_message}); "
                                 "use --cacert FILE, or --insecure for a self-signed development certificate") from None
        except (TimeoutError, OSError, http.client.HTTPException) as exc:
            raise AuditHTTPError(f"{self.origin}: {type(exc).__name__}: {exc}") from None
        finally:
            conn.close()
        if self.on_request is not None:
            self.on_request(resp)
        return resp


class Browser:
    """A cookie jar over a `Client`: sends the cookies it holds, keeps what `Set-Cookie` says."""

    def __init__(self, client: Client, cookies: Mapping[str, str] | None = None) -> None:
        self.client = client
        self.cookies: dict[str, str] = dict(cookies or {})

    def copy(self) -> Browser:
        return Browser(self.client, self.cookies)

    def request(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str] | None = None,
        form: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        json_body: object = None,
        body: bytes | None = None,
        bearer: str | None = None,
    ) -> Response:
        hdrs = dict(headers or {})
        if form is not None:
            body = urlencode(list(form.items()) if isinstance(form, Mapping) else list(form)).encode()
            hdrs.setdefault("Content-Type", "application/x-www-form-urlencoded")
        elif json_body is not None:
            import json

            body = json.dumps(json_body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        if method in ("POST", "PUT", "PATCH", "DELETE") and body is None:
            body = b""
        if self.cookies and "Cookie" not in hdrs:
            hdrs["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if bearer:
            hdrs["Authorization"] = f"Bearer {bearer}"
        resp = self.client.request(method, path, headers=hdrs, body=body)
        for cookie in resp.set_cookies:
            if cookie.deletes:
                self.cookies.pop(cookie.name, None)
            else:
                self.cookies[cookie.name] = cookie.value
        return resp

    def get(self, path: str, **kw: Unpack[RequestOptions]) -> Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Unpack[RequestOptions]) -> Response:
        return self.request("POST", path, **kw)
