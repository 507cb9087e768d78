"""The exception tree of sessionward.

One root (`SessionwardError`, never raised itself) and a shallow tree shaped by what callers branch on:
each leaf maps to one HTTP status in the Flask extension, and carries the data a caller needs
(`setting`, `retry_after`, `code`), never a secret.
"""

from __future__ import annotations


class SessionwardError(Exception):
    """Root of every error sessionward raises on purpose. Never raised itself."""


class ConfigError(SessionwardError, ValueError):
    """A setting is missing or wrong. `setting` names it; raised at start-up, never per request."""

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(f"{setting}: {message}")
        self.setting = setting


class MissingExtra(ConfigError, ImportError):
    """An optional dependency is not installed. The message names the extra that brings it; `setting` is
    `"extra"`, `extra` the extra's name (`redis`, `postgres`, `flask`, `asgi`, `server`)."""

    def __init__(self, module: str, extra: str, purpose: str) -> None:
        message = f"{purpose} needs {module!r}, which is not installed: pip install 'sessionward[{extra}]'"
        Exception.__init__(self, message)
        self.setting = "extra"
        self.extra = extra
        self.name = module  # ImportError's attribute


class StoreError(SessionwardError):
    """A store could not do what was asked."""


class StoreUnavailable(StoreError):
    """The store cannot be reached. Callers fail closed: 503, never access."""


class Overloaded(SessionwardError):
    """Too much work of one kind is in progress here (e.g. password hashing during a login storm): 503 with
    `retry_after` (whole seconds). Nothing was checked or changed; the client may retry."""

    code = "overloaded"

    def __init__(self, message: str, *, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class CreateError(StoreError):
    """A record with the same id already exists (ids collide only by bug or attack)."""


class AuthenticationError(SessionwardError):
    """Authentication failed (401). The message is safe to show to the client."""

    code = "unauthorized"


class InvalidCredentials(AuthenticationError):
    """Wrong username or password, or a disabled account: one message for all, so no user enumeration."""

    code = "invalid_credentials"

    def __init__(self, message: str = "Invalid username or password.") -> None:
        super().__init__(message)


class Throttled(AuthenticationError):
    """Too many failed attempts (429). `retry_after` is whole seconds until the next attempt may succeed."""

    code = "throttled"

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"Too many attempts. Try again in {retry_after} seconds.")
        self.retry_after = retry_after


class ReauthenticationRequired(AuthenticationError):
    """The action needs a recent login (fresh token / recent password entry)."""

    code = "reauthentication_required"

    def __init__(self, message: str = "This action needs a recent login. Please sign in again.") -> None:
        super().__init__(message)


class TokenError(AuthenticationError):
    """A bearer or refresh token was refused (401, RFC 6750 `invalid_token`).

    The message is deliberately generic; `reason` is for logs only and never names a secret.
    """

    code = "invalid_token"

    def __init__(self, reason: str = "invalid token") -> None:
        super().__init__("The token is missing, invalid, expired or revoked.")
        self.reason = reason


class RefreshTokenReused(TokenError):
    """A spent refresh token came back: its whole family has been revoked."""


class PermissionDenied(SessionwardError):
    """Authenticated, but not allowed (403)."""

    code = "forbidden"


class CSRFError(PermissionDenied):
    """The CSRF token or the request's origin is missing or wrong (403)."""

    code = "csrf_failed"


class ValidationError(SessionwardError, ValueError):
    """Input is well-formed but not acceptable (422), e.g. a password that breaks the policy."""

    code = "validation_failed"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class PasswordPolicyError(ValidationError):
    """A new password breaks the password policy; the message says which rule."""

    code = "weak_password"


class NotFound(SessionwardError, LookupError):
    """The named user, session or key does not exist (404)."""

    code = "not_found"
