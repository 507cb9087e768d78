"""`sessionward keys rotate|list`: the signing keys of access tokens, shared by every instance through SQL.

A rotation makes a new key that every running instance learns within a few seconds and that signs from then
on; older keys keep verifying until the last token they signed has expired, then are retired (T11).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
from typing import Any, Callable

__all__ = ["add_key_commands"]


def _when(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _token_service(svc: Any) -> Any:
    """The same `TokenService` the server builds: settings from the environment, keys from the instance."""
    from .flask.jwt_config import build_token_service

    config = {k: v for k, v in os.environ.items() if k.startswith("SESSIONWARD_")}
    config.update(
        SESSIONWARD_DATABASE_URL=svc.database_url,
        SESSIONWARD_KEK=svc.secrets.kek,
        SESSIONWARD_REFRESH_KEY=svc.secrets.refresh_key,
    )
    return build_token_service(config, store=svc.store, clock=svc.clock)


def add_key_commands(
    sub: Any, common: argparse.ArgumentParser, open_services: Callable[[str | None], Any], cli_error: type[Exception]
) -> None:
    """Add `keys rotate [--alg ALG]` and `keys list` to the `sessionward` parser."""

    def rotate(args: argparse.Namespace) -> int:
        tokens = _token_service(open_services(args.instance))  # validates SESSIONWARD_TOKEN_ALG
        # --alg, else SESSIONWARD_TOKEN_ALG when set (the way to move to another algorithm), else the current key's
        key = tokens.rotate_keys(alg=args.alg or os.environ.get("SESSIONWARD_TOKEN_ALG") or None)
        # retire_keys ran inside rotate_keys; list what is left
        print(f"new signing key {key.kid} ({key.alg}) signs from {_when(key.activates_at)} UTC; "
              f"older keys keep verifying until their tokens have expired")
        return 0

    def list_keys(args: argparse.Namespace) -> int:
        from .db import make_engine
        from .tokens import SQLKeyRepository

        svc = open_services(args.instance)
        now = svc.clock.now()
        keyset = SQLKeyRepository(make_engine(svc.database_url), svc.secrets.kek).load(now=now)
        signing = keyset.signing_key(now).kid
        print(f"{'KID':<24} {'ALG':<6} {'STATUS':<10} {'CREATED (UTC)':<20} ACTIVATES (UTC)")
        for key in keyset.keys:
            status = "signing" if key.kid == signing else "pending" if key.activates_at > now else "verifying"
            print(f"{key.kid:<24} {key.alg:<6} {status:<10} {_when(key.created_at):<20} {_when(key.activates_at)}")
        return 0

    keys = sub.add_parser("keys", help="rotate and list token signing keys").add_subparsers(
        dest="action", required=True, parser_class=sub._parser_class  # the CLI's one-line-error parser
    )
    rot = keys.add_parser("rotate", parents=[common], help="make a new signing key; old ones keep verifying")
    from .tokens.keys import ALGORITHMS

    rot.add_argument("--alg", choices=sorted(ALGORITHMS), default=None,
                     help="algorithm of the new key (default: SESSIONWARD_TOKEN_ALG if set, else that of the current key; "
                          "Ed25519 is RFC 9864's name for EdDSA, which it deprecates)")
    rot.set_defaults(func=rotate)
    keys.add_parser("list", parents=[common], help="list signing keys").set_defaults(func=list_keys)
