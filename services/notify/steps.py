"""Appending a notification's step events exactly once, whatever crashed in between.

Each notification (and each acknowledgement watch) is an aggregate with ONE writer at a time: the
holder of its row lock or lease.  The row remembers the aggregate's version and last stream
sequence, so an append needs no lookup and a retried append is made at the same expected version,
where the store recognises it.  If the process died after an append but before the row was
updated, the row is stale: then the aggregate is read, and a step already stored is not written
again.

Steps are appended one event at a time, each after the previous one's sequence: single-event
appends are pipelined by the store, atomic multi-event batches cost the server far more, and a
lone NotificationSent without its outcome is exactly what the recovery path expects after a crash.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from shared.events import Event
from shared.eventstore import ConcurrencyError, EventStore, StoredEvent, aggregate_filter


async def stored(store: EventStore, event_type: type[Event], community: str, aggregate_id: str) -> list[StoredEvent]:
    """Every stored event of one notify aggregate (the kind of ``event_type``), in order."""
    filt = aggregate_filter(store.ns, community, event_type.context, event_type.aggregate_kind, aggregate_id)
    return await store.read(filt)


async def history(store: EventStore, event_type: type[Event], community: str, aggregate_id: str) -> list[Event]:
    """Every event of one notify aggregate, decoded, in order."""
    return [s.event() for s in await stored(store, event_type, community, aggregate_id)]


async def append_steps(
    store: EventStore,
    events: Sequence[Event],
    expected_version: int,
    already: Callable[[Event], bool],
    *,
    expected_seq: int | None = None,
) -> tuple[int, int | None]:
    """Append ``events`` after ``expected_version``; returns the aggregate's (version, last sequence).

    ``already(stored_event)`` says whether a stored event is the outcome being written (e.g. the
    Delivered of the same attempt): then nothing more is written.
    """
    version, seq = expected_version, (0 if expected_version == 0 else expected_seq)
    pending = list(events)
    while pending:
        event = pending[0]
        try:
            result = await store.append([event], version, expected_seq=seq)
        except ConcurrencyError:
            # The row was stale (a crash after an append): trust the stream.
            items = await stored(store, type(event), event.community, event.aggregate_id)
            decoded = [s.event() for s in items]
            version, seq = len(items), (items[-1].seq if items else 0)
            if any(already(e) for e in decoded):
                return version, seq
            ids = {e.id for e in decoded}
            pending = [e for e in pending if e.id not in ids]
            continue
        version, seq = result.version, result.last_seq
        pending.pop(0)
    return version, seq
