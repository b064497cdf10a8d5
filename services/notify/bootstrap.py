"""The composition root of the notify service: :class:`NotifyDeps`, built once per process.

The lifespan opens the connections (:class:`shared.service.Runtime`); :func:`bootstrap` adds what
notify derives from its settings — the sealer of channel secrets, the key of signed acknowledgement
links, the routing rules read from ``routing.toml`` — into one typed object that handlers, queries,
reactions and routes receive.  Nothing here connects; it runs in the lifespan, never at import.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import asyncpg
from fastapi import Request

from shared.eventstore import EventStore
from shared.keywrap import keyring_from_settings
from shared.service import Runtime, runtime_of
from shared.vault import TextVault

from .domain.routing import RoutingRules, parse_rules
from .sealing import Sealer
from .settings import NotifySettings

RULES_FILE = Path(__file__).with_name("routing.toml")


@dataclass(frozen=True)
class NotifyDeps:
    """Everything the notify service's handlers, queries, reactions and routes need."""

    settings: NotifySettings
    store: EventStore
    pool: asyncpg.Pool
    sealer: Sealer  # opens and seals channel secrets at rest
    link_key: bytes  # signs acknowledgement links
    rules: RoutingRules
    #: Reveals the issues' free text (sealed by the issues service) for a message being sent.
    vault: TextVault


async def bootstrap(runtime: Runtime[Any]) -> NotifyDeps:
    """``ServiceSpec.wire``: the service's dependencies on the runtime's connections."""
    settings = runtime.settings
    assert isinstance(settings, NotifySettings), "the notify service runs on NotifySettings"
    return NotifyDeps(
        settings=settings,
        store=runtime.store,
        pool=runtime.pool,
        sealer=Sealer(settings.sealing_key()),
        link_key=settings.link_key(),
        rules=default_rules(),
        vault=TextVault(runtime.pool, keyring_from_settings(settings)),
    )


def deps(request: Request) -> NotifyDeps:
    """The running service's dependencies, for a route."""
    wired: NotifyDeps = runtime_of(request).deps
    return wired


def load_rules(path: Path = RULES_FILE) -> RoutingRules:
    """Read and validate a rules file (:class:`~services.notify.domain.routing.RuleError` if malformed)."""
    with path.open("rb") as fh:
        return parse_rules(tomllib.load(fh))


@cache
def default_rules() -> RoutingRules:
    """The rules shipped beside this module (read on first use, never at import)."""
    return load_rules(RULES_FILE)
