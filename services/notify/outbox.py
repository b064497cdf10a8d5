"""Appending a notification's step events exactly once, whatever crashed in between.

Each notification (and each acknowledgement watch) is an aggregate with ONE writer at a time: the
holder of its row lock or lease.  The row remembers the aggregate's version, so a retried append
is made at the same expected version and the store recognises it.  If the process died after the
append but before the row was updated, the expected version is stale: then the aggregate is read
and a step already there is not written again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from shared.events import Event
from shared.eventstore import ConcurrencyError, EventStore, aggregate_filter


async def history(store: EventStore, event_type: type[Event], community: str, aggregate_id: str) -> list[Event]:
    """Every event of one notify aggregate (the kind of ``event_type``), decoded, in order."""
    filt = aggregate_filter(store.ns, community, event_type.context, event_type.aggregate_kind, aggregate_id)
    return [s.event() for s in await store.read(filt)]


async def append_steps(
    store: EventStore, events: Sequence[Event], expected_version: int, already: Callable[[Event], bool]
) -> int:
    """Append ``events`` after ``expected_version``; returns the aggregate's version afterwards.

    ``already(stored_event)`` says whether a stored event is the step being written (e.g. the
    Delivered of the same attempt), so a step is never recorded twice.
    """
    try:
        return (await store.append(events, expected_version)).version
    except ConcurrencyError:
        first = events[0]
        steps = await history(store, type(first), first.community, first.aggregate_id)
        if any(already(e) for e in steps):
            return len(steps)
        return (await store.append(events, len(steps))).version
