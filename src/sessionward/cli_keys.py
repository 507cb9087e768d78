"""`sessionward keys rotate|list|revoke`: the signing keys of access tokens, shared by every instance through SQL.

A rotation makes a new key that every running instance learns within a few seconds and that signs from then
on; older keys keep verifying until the last token they signed has expired (access TTL + leeway after the
next key took over), then every instance leaves them out by itself (T11, T14). `revoke` withdraws a key
believed leaked: its tokens are refused at once everywhere, and it leaves every key set and JWKS within the
key refresh interval; the key that signs now cannot be revoked (rotate first).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import Any

from .clock import iso_utc

__all__ = ["add_key_commands"]


def _token_service(svc: Any) -> Any:
    """The same `TokenService` the server builds: settings from the environment, keys from the instance."""
    from .assembly import build_token_service

    return build_token_service(svc.settings, store=svc.store, clock=svc.clock)


def add_key_commands(
    sub: Any, common: argparse.ArgumentParser, open_services: Callable[[str | None], Any], cli_error: type[Exception]
) -> None:
    """Add `keys rotate [--alg ALG]`, `keys list` and `keys revoke KID` to the `sessionward` parser."""

    def rotate(args: argparse.Namespace) -> int:
        from .tokens.keys import ALGORITHM_CHOICES, ALGORITHMS

        if args.alg is not None and args.alg not in ALGORITHMS:
            raise cli_error(f"--alg must be one of {ALGORITHM_CHOICES}")
        svc = open_services(args.instance)  # validates SESSIONWARD_TOKEN_ALG
        tokens = _token_service(svc)
        # --alg, else SESSIONWARD_TOKEN_ALG when set (validated with the other settings), else the current key's
        configured = svc.settings.tokens.algorithm if os.environ.get("SESSIONWARD_TOKEN_ALG") else None
        key = tokens.rotate_keys(alg=args.alg or configured)
        # retire_keys ran inside rotate_keys; list what is left
        print(f"new signing key {key.kid} ({key.alg}) signs from {iso_utc(key.activates_at)}; "
              f"older keys keep verifying until their tokens have expired")
        return 0

    def list_keys(args: argparse.Namespace) -> int:
        from .db import make_engine
        from .tokens import SQLKeyRepository

        svc = open_services(args.instance)
        now = svc.clock.now()
        repo = SQLKeyRepository(make_engine(svc.database_url), svc.secrets.kek)
        repo.bind_token_lifetime(svc.settings.tokens.policy.max_token_lifetime)  # as the server works it out
        print(f"{'KID':<24} {'ALG':<6} {'STATUS':<10} {'CREATED (UTC)':<20} {'ACTIVATES (UTC)':<20} UNTIL (UTC)")
        for info in repo.describe(now=now):
            until = {"verifying": "retires ", "retired": "retired ", "revoked": "revoked "}.get(info.status, "")
            until = until + iso_utc(info.until) if until and info.until is not None else ""
            print(f"{info.kid:<24} {info.alg:<6} {info.status:<10} {iso_utc(info.created_at):<20} "
                  f"{iso_utc(info.activates_at):<20} {until}".rstrip())
        return 0

    def revoke(args: argparse.Namespace) -> int:
        tokens = _token_service(open_services(args.instance))
        revocation, families = tokens.revoke_key(args.kid)
        print(f"revoked signing key {revocation.kid} ({revocation.alg}): tokens it signed are refused from now on "
              f"by every instance; it leaves every key set and JWKS within the key refresh interval")
        print(f"{families} live token famil{'y' if families == 1 else 'ies'} got their latest access token from it; "
              f"their clients get a 401 and refresh (refresh tokens do not depend on signing keys)")
        return 0

    keys = sub.add_parser("keys", help="rotate, list and revoke token signing keys").add_subparsers(
        dest="action", required=True, parser_class=sub._parser_class  # the CLI's one-line-error parser
    )
    rot = keys.add_parser("rotate", parents=[common], help="make a new signing key; old ones keep verifying")
    # Checked in `rotate`, not with `choices=`: building the parser must not import the token modules (they load
    # prometheus_client, which `serve` must configure for its workers first).
    rot.add_argument("--alg", default=None, metavar="ALG",
                     help="algorithm of the new key: ES256, Ed25519, EdDSA, RS256 or HS256 (default: "
                          "SESSIONWARD_TOKEN_ALG if set, else that of the current key; Ed25519 is RFC 9864's name "
                          "for EdDSA, which it deprecates)")
    rot.set_defaults(func=rotate)
    keys.add_parser("list", parents=[common], help="list signing keys and their state").set_defaults(func=list_keys)
    rev = keys.add_parser("revoke", parents=[common], help="withdraw a leaked key: its tokens fail at once everywhere")
    rev.add_argument("kid")
    rev.set_defaults(func=revoke)
