"""Opening accounts outside the console's pages: the command line (``gridwork account add``), the
demo, the benchmarks — straight through the event store, as ops would."""

from __future__ import annotations

from typing import Any

from shared.events.console import Scope


async def add_account(
    username: str, display_name: str, scope: Scope, password: str, *, settings: Any = None, one_time: bool = True
) -> None:
    """Open one account through the event store, as the command line (ops) does (``settings``: the
    stack's, default those of the stack ``gridwork up`` runs)."""
    import re

    from services.cli.local import load_settings
    from shared.errors import DomainError
    from shared.events.console import USERNAME_PATTERN
    from shared.eventstore import EventStore, connect
    from shared.nats import patches

    from .accounts import AccountsDeps, open_account
    from .domain.accounts import LockPolicy
    from .passwords import Passwords
    from .settings import ConsoleSettings

    if not re.match(USERNAME_PATTERN, username):
        raise DomainError("3–32 lower-case letters, digits, _ or -", field="username")
    patches.install()
    settings = ConsoleSettings(**(settings or load_settings()).model_dump())
    nc = await connect(settings, "gridwork-account")
    try:
        store = EventStore(nc, settings)
        deps = AccountsDeps(store=store, passwords=Passwords(settings.sealing_key()), policy=LockPolicy())
        await open_account(username, display_name, scope, password, by=None, deps=deps, one_time=one_time)
    finally:
        await nc.close()
