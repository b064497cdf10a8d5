"""`gridwork account add`: open a console account from the command line (the first ops account,
the demo's accounts), on the stack ``gridwork up`` runs (its data directory) or the servers named
by the environment."""

from __future__ import annotations

import argparse
import asyncio
import sys

from shared.events.console import Scope

ROLES = ("grid_worker", "secretary", "street_admin", "agency", "hotline", "ops")
AGENCY_KINDS = ("property_management", "police", "street_office", "urban_management")


def register(commands: argparse._SubParsersAction, bench: argparse._SubParsersAction) -> None:
    """Add ``gridwork account add`` (``gridwork bench console`` is the command's: it runs the demo)."""
    del bench
    account = commands.add_parser("account", help="console accounts")
    sub = account.add_subparsers(dest="account_command", required=True, metavar="ACTION")
    add = sub.add_parser("add", help="open an account (prints a one-time password unless one comes on stdin)")
    add.add_argument("username")
    add.add_argument("--role", required=True, choices=ROLES)
    add.add_argument("--name", help="the person's name as the console shows it (default: the username)")
    add.add_argument("--community")
    add.add_argument("--grid")
    add.add_argument("--worker", help="the worker id of a grid worker")
    add.add_argument("--agency", help="the agency's own id")
    add.add_argument("--agency-kind", choices=AGENCY_KINDS)
    add.add_argument("--street")
    add.add_argument(
        "--password-stdin", action="store_true", help="read the first password from stdin (still one-time)"
    )
    add.set_defaults(handler=cmd_account_add)


def cmd_account_add(args: argparse.Namespace) -> int:
    from shared.errors import DomainError

    from .passwords import one_time_password
    from .provisioning import add_account

    password = sys.stdin.readline().rstrip("\n") if args.password_stdin else one_time_password()
    if not password:
        print("no password on stdin", file=sys.stderr)
        return 2
    try:
        scope = Scope(
            role=args.role,
            community=args.community,
            street=args.street,
            grid=args.grid,
            worker_id=args.worker,
            agency=args.agency,
            agency_kind=args.agency_kind,
        )
        from services.cli.local import load_settings

        asyncio.run(add_account(args.username, args.name or args.username, scope, password, settings=load_settings()))
    except DomainError as err:
        print(f"{err.field or 'account'}: {err.message}", file=sys.stderr)
        return 2
    except ValueError as err:
        print(str(err), file=sys.stderr)
        return 2
    if args.password_stdin:
        print(f"account {args.username} opened")
    else:
        print(f"account {args.username} opened; one-time password (changed at first sign-in): {password}")
    return 0
