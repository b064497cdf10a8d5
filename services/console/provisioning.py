"""Opening accounts outside the console's pages: the command line (``gridwork account add``), the
demo, the benchmarks — straight through the event store, as ops would."""

from __future__ import annotations

import re
from collections.abc import Sequence

from shared.errors import DomainError
from shared.events.console import USERNAME_PATTERN, Scope
from shared.eventstore import EventStore, connect
from shared.nats import patches
from shared.settings import Settings

from .accounts import AccountsDeps, open_account
from .domain.accounts import LockPolicy
from .passwords import Passwords
from .settings import ConsoleSettings

#: An account to open: username, display name, role and scope, first password.
NewAccount = tuple[str, str, Scope, str]


async def add_accounts(accounts: Sequence[NewAccount], *, settings: Settings, one_time: bool = True) -> None:
    """Open ``accounts`` through the event store on one connection, as the command line (ops) does."""
    for username, *_ in accounts:
        if not re.match(USERNAME_PATTERN, username):
            raise DomainError("3–32 lower-case letters, digits, _ or -", field="username")
    patches.install()
    console = ConsoleSettings(**settings.model_dump())
    nc = await connect(console, "gridwork-account")
    try:
        deps = AccountsDeps(EventStore(nc, console), Passwords(console.sealing_key()), LockPolicy())
        for username, name, scope, password in accounts:
            await open_account(username, name, scope, password, by=None, deps=deps, one_time=one_time)
    finally:
        await nc.close()


async def add_account(
    username: str, display_name: str, scope: Scope, password: str, *, settings: Settings, one_time: bool = True
) -> None:
    """Open one account (:func:`add_accounts`)."""
    await add_accounts([(username, display_name, scope, password)], settings=settings, one_time=one_time)
