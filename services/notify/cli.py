"""`gridwork` subcommands contributed by the notify service."""

from __future__ import annotations

import argparse


def register(commands: argparse._SubParsersAction, bench: argparse._SubParsersAction) -> None:
    """Add this service's subcommands (and `gridwork bench …` targets).  None yet."""
    del commands, bench
