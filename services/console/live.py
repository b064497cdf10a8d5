"""Live updates: events from NATS, turned into "this topic changed" signals for each open page.

The hub subscribes to the event subjects once per process.  When an event arrives it waits until
the services whose read models show it have folded it (their ``/readyz`` lag is zero), then tells
every listener whose scope covers the event's community which topic changed: ``work`` (visits and
the board), ``issues`` (the problem queue), ``notify`` (notifications), ``accounts``.  The page then
fetches its live fragment again through the console — so what it shows is still decided by the
service's own authorization; the signal itself carries no data.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from nats.aio.client import Client as NATS

from .gateway import Gateway

log = structlog.get_logger("gridwork.console.live")

#: Per event context: (topic, the service whose read models must have folded it first).
ROUTES: dict[str, tuple[tuple[str, str], ...]] = {
    "visits": (("work", "scoring"), ("work", "visits")),
    "scoring": (("work", "scoring"),),
    "issues": (("issues", "issues"), ("notify", "notify")),
    "notify": (("notify", "notify"),),
    "console": (("accounts", ""),),
}

#: How long a burst may wait for a service to fold it before the pages are told anyway.
SETTLE_SECONDS = 3.0


@dataclass(eq=False)
class Listener:
    """One open page's event stream: the topics that changed in communities it may see, each
    pending at most once (a page that is slow to read gets one signal per topic, not a backlog)."""

    covers: Callable[[str], bool]
    pending: set[str] = field(default_factory=set)
    ready: asyncio.Event = field(default_factory=asyncio.Event)

    def tell(self, topic: str) -> None:
        self.pending.add(topic)
        self.ready.set()

    async def next(self) -> list[str]:
        """The topics that changed since the last call (waits for at least one)."""
        await self.ready.wait()
        self.ready.clear()
        topics, self.pending = sorted(self.pending), set()
        return topics


class LiveHub:
    """The process's one subscription to the events, fanned out to the listeners."""

    def __init__(self, nc: NATS, gateway: Gateway, namespace: str) -> None:
        self.nc = nc
        self.gateway = gateway
        self.namespace = namespace
        self.listeners: set[Listener] = set()
        self._dirty: dict[str, dict[str, set[str]]] = {}
        self._settling: dict[str, asyncio.Task[None]] = {}

    async def run(self, _runtime: Any = None) -> None:
        """Subscribe and keep subscribed (a background task of the service)."""
        sub = await self.nc.subscribe(f"{self.namespace}.>", cb=self._on_message)
        try:
            await asyncio.Event().wait()
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
            for task in self._settling.values():
                task.cancel()

    async def _on_message(self, msg: Any) -> None:
        parts = msg.subject.split(".")
        if len(parts) < 6 or not self.listeners:
            return
        community, context = parts[1], parts[2]
        for topic, service in ROUTES.get(context, ()):
            self._dirty.setdefault(service, {}).setdefault(topic, set()).add(community)
            task = self._settling.get(service)
            if task is None or task.done():
                self._settling[service] = asyncio.create_task(self._settle(service))

    async def _settle(self, service: str) -> None:
        """Wait for ``service`` to fold what arrived, then tell the listeners (one signal per burst)."""
        if service:
            await asyncio.sleep(0.02)  # the event reaches the stream's consumers as it reaches us
            loop = asyncio.get_running_loop()
            deadline = loop.time() + SETTLE_SECONDS
            while loop.time() < deadline:
                try:
                    ready = await self.gateway.ready(service)
                    if all(not p.get("lag_events") for p in ready.get("projections", [])):
                        break
                except Exception as err:  # a service restarting: tell the pages after the deadline
                    log.debug("live_settle_failed", service=service, error=type(err).__name__)
                await asyncio.sleep(0.05)
        dirty = self._dirty.pop(service, {})
        for topic, communities in dirty.items():
            for listener in list(self.listeners):
                if any(listener.covers(c) for c in communities):
                    listener.tell(topic)

    @contextlib.asynccontextmanager
    async def listen(self, covers: Callable[[str], bool]) -> AsyncIterator[Listener]:
        """A listener for as long as the page's stream is open."""
        listener = Listener(covers)
        self.listeners.add(listener)
        try:
            yield listener
        finally:
            self.listeners.discard(listener)
