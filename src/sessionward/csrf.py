"""CSRF defence (ASVS 3.5.1-3.5.3): a synchronizer token bound to the session, an Origin / Sec-Fetch-Site
check on every unsafe request, and a pre-session token for the login form (login CSRF).

Tokens are HMAC-SHA256 under a key used for nothing else, compared with `hmac.compare_digest`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable

from .config import check_key
from .exceptions import CSRFError

__all__ = ["CSRFProtector", "UNSAFE_METHODS"]

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_MAX_TOKEN = 128


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


class CSRFProtector:
    """Make and check CSRF tokens. `key` must be >= 256 random bits (ConfigError otherwise)."""

    def __init__(self, key: bytes, *, trusted_origins: Iterable[str] = ()) -> None:
        self._key = check_key("SESSIONWARD_CSRF_KEY", key)
        self.trusted_origins = frozenset(o.rstrip("/").lower() for o in trusted_origins)

    def _mac(self, purpose: bytes, binding: str) -> str:
        return _b64(hmac.new(self._key, purpose + b"\x00" + binding.encode("utf-8"), hashlib.sha256).digest())

    def session_token(self, binding: str) -> str:
        """The synchronizer token for a session; `binding` is the session's stored secret hash."""
        return self._mac(b"session", binding)

    def access_cookie_token(self, jti: str) -> str:
        """The double-submit value for an access token carried in a cookie, bound to the token's `jti`."""
        return self._mac(b"access-cookie", jti)

    def login_token(self, nonce: str) -> str:
        """The login form's token, bound to a random nonce kept in a short-lived pre-session cookie."""
        return self._mac(b"login", nonce)

    def verify_session_token(self, binding: str, token: str | None) -> None:
        self._verify(self.session_token(binding), token)

    def verify_access_cookie_token(self, jti: str, token: str | None) -> None:
        self._verify(self.access_cookie_token(jti), token)

    def verify_login_token(self, nonce: str | None, token: str | None) -> None:
        if not nonce or len(nonce) > _MAX_TOKEN:
            raise CSRFError("The login form expired. Please reload the page and try again.")
        self._verify(self.login_token(nonce), token)

    @staticmethod
    def _verify(expected: str, token: str | None) -> None:
        if not token or len(token) > _MAX_TOKEN or not token.isascii():
            raise CSRFError("CSRF token missing or invalid.")
        if not hmac.compare_digest(expected.encode("ascii"), token.encode("ascii")):
            raise CSRFError("CSRF token missing or invalid.")

    def check_origin(self, *, own_origin: str, origin: str | None, sec_fetch_site: str | None) -> None:
        """Refuse a cross-site unsafe request. `Sec-Fetch-Site` wins when present (only `same-origin` and `none`
        pass); otherwise `Origin` must be ours or trusted (`null` is refused). A request with neither header
        (non-browser clients) passes this check; the synchronizer token still applies."""
        if sec_fetch_site is not None:
            value = sec_fetch_site.strip().lower()
            if value in ("same-origin", "none"):
                return
            if value == "same-site" and origin and self._trusted(own_origin, origin):
                return
            raise CSRFError("Cross-site request refused.")
        if origin is not None and not self._trusted(own_origin, origin):
            raise CSRFError("Cross-site request refused.")

    def _trusted(self, own_origin: str, origin: str) -> bool:
        o = origin.strip().rstrip("/").lower()
        return o != "null" and (o == own_origin.rstrip("/").lower() or o in self.trusted_origins)
