"""The per-request authentication state, one typed object per request (Flask keeps it in `flask.g`, an ASGI
adapter in the request scope). Framework-free: it only records what was found and what the response must do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Final, Literal

if TYPE_CHECKING:
    from ..exceptions import TokenError
    from ..sessions import Session
    from ..tokens import Claims
    from ..users import User
    from .dpop import ChallengeKind

__all__ = ["UNSET", "RequestState", "Unset"]


class Unset(Enum):
    """"Not looked up yet" (distinct from None: "looked up, there is none")."""

    UNSET = "unset"


UNSET: Final = Unset.UNSET


@dataclass(slots=True)
class RequestState:
    """What one request has learnt and what its response must carry.

    Found: `session` (the cookie session, loaded lazily), `user` (its user, or the access token's), `claims`
    (the access token verified in this request), `token_results` (each token verified at most once),
    `dpop_checked` (each DPoP proof checked and spent at most once).
    For the response: `new_cookie` (a new session secret to set), `logout` / `dead_cookie` (expire the cookie),
    `login_nonce` / `new_login_nonce` (the login-CSRF pre-session cookie), `authenticated` (no-store),
    `dpop_nonce` (a `DPoP-Nonce` header), `challenge` (which `WWW-Authenticate` scheme a token refusal names:
    set by the token check, `sessionward.web.dpop.challenge_kind`; None: no token route, plain Bearer)."""

    session: Session | None | Literal[Unset.UNSET] = UNSET
    user: User | None | Literal[Unset.UNSET] = UNSET
    claims: Claims | None = None
    token_results: dict[str, Claims | TokenError] = field(default_factory=dict)
    dpop_checked: set[str] = field(default_factory=set)  #: tokens whose DPoP proof was checked and spent
    dpop_nonce: str | None = None  #: a fresh `DPoP-Nonce` for the response
    challenge: ChallengeKind | None = None  #: the scheme(s) of a token refusal's `WWW-Authenticate`
    new_cookie: str | None = None
    logout: bool = False
    dead_cookie: bool = False
    login_nonce: str | None = None
    new_login_nonce: str | None = None
    authenticated: bool = False
    dbsc_offer: str | None = None  #: a `Secure-Session-Registration` value for this response (at login)

    def logged_in(self, session: Session, user: User | None) -> None:
        """A new session (login, rotation): its secret goes out in the response."""
        self.session, self.new_cookie = session, session.secret
        self.user = UNSET if user is None else user

    def logged_out(self) -> None:
        self.session, self.user, self.logout = None, None, True

    def identify(self, claims: Claims) -> None:
        """The verified access token becomes the request's identity (its user is looked up anew). Raises
        `TokenError` when this request has already acted as another user: a view (or a dependency declared
        before the token's) read the cookie session's user, and the token names someone else. Whichever ran
        first, a request never serves one user with another's token."""
        if self.claims is not claims:
            earlier = self.user
            if earlier is not UNSET and earlier is not None and earlier.id != claims.sub:
                from ..exceptions import TokenError

                raise TokenError("the token's user is not the user this request already acted as")
            self.claims = claims
            self.user = UNSET
        self.authenticated = True

    @property
    def has_session(self) -> bool:
        return self.session is not UNSET and self.session is not None

    @property
    def no_store(self) -> bool:
        """The response carries or depends on credentials: `Cache-Control: no-store`."""
        return bool(self.new_cookie) or self.authenticated or self.has_session
