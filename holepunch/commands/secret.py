"""The session secret on the command line: `--secret-file FILE` or `$HOLEPUNCH_SECRET`.

Rule: as cli.py: errors are one line saying what is wrong and how to fix it (argument errors exit
2). A secret is never an option's value, because every user of the machine sees command lines in
`ps`; it comes from a file (one secret per line) or from the environment. What it protects is in
docs/wire-protocol.md, "Authentication".
"""

from __future__ import annotations

import argparse
import logging
import os
from typing import Any

SECRET_ENV = "HOLEPUNCH_SECRET"
"""The environment variable read for the session secret when no --secret-file is given."""

log = logging.getLogger("holepunch.cli")


def secret_file(path: str) -> tuple[bytes, ...]:
    """--secret-file: one secret per line, stripped, blank lines skipped (a server accepts them all,
    the first is current; a client uses the first)."""
    try:
        with open(path, "rb") as file:
            data = file.read()
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"cannot read secret file {path!r}: {exc.strerror or exc}") from None
    secrets = tuple(line.strip() for line in data.splitlines() if line.strip())
    if not secrets:
        raise argparse.ArgumentTypeError(f"secret file {path!r} is empty; put the secret on its first line")
    return secrets


def add_option(cmd: argparse.ArgumentParser, text: str) -> None:
    """Add `--secret-file FILE` to a subcommand, with `text` saying what the secret does there."""
    cmd.add_argument("--secret-file", type=secret_file, metavar="FILE",
                     help=f"{text} (default: ${SECRET_ENV} if set; UDP only)")


def secrets_of(args: argparse.Namespace) -> tuple[bytes, ...]:
    """The secrets of --secret-file, else of $HOLEPUNCH_SECRET, else none; `ValueError` if that is empty."""
    if args.secret_file is not None:
        return tuple(args.secret_file)
    value = os.environ.get(SECRET_ENV)
    if value is None:
        return ()
    if not value.strip():
        raise ValueError(f"{SECRET_ENV} is set but empty; unset it or give it the secret")
    return (value.strip().encode("utf-8", "surrogateescape"),)


def client_secret(args: argparse.Namespace) -> bytes | None:
    """The first secret for `connect`/`chat`, or None; `ValueError` with --tcp (UDP only)."""
    secrets = secrets_of(args)
    if secrets and args.tcp:
        raise ValueError("a secret authenticates UDP only; drop --tcp or the secret")
    return secrets[0] if secrets else None


def server_config(args: argparse.Namespace) -> Any:
    """A ServerConfig with the secrets for `server`, or None without any; `ValueError` with --tcp-only."""
    secrets = secrets_of(args)
    if not secrets:
        return None
    if args.tcp_only:
        raise ValueError("a secret authenticates UDP only; drop --tcp-only or the secret")
    from ..protocol.config import ServerConfig

    log.info("authentication on (%d secret%s): plain clients are refused, TCP is not served",
             len(secrets), "s"[len(secrets) == 1:])
    return ServerConfig(secrets=secrets)
