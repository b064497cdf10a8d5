"""The scoring projection: the runner's entry points (``apply``, and ``stage``/``write`` for a replay)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from typing import Any

from pydantic_core import from_json

from shared.db import Conn
from shared.eventstore import StoredEvent

from ..domain import RuleSet
from .batch import HANDLERS, FoldBatch, Plan
from .schema import BASE_EVENT_TYPES, DDL


class ScoringProjection:
    """The scoring read model (see the package docstring).  ``rules`` decide what counts."""

    name = "scoring"
    replay_batch = 50_000  # `gridwork replay scoring` folds in batches this large (fastest here; 10k: -25 %)

    def __init__(self, rules: RuleSet | Callable[[], RuleSet] | None = None) -> None:
        # Rules may be given lazily, so a module-level instance reads no files at import time.
        self._rules: RuleSet | None = rules if isinstance(rules, RuleSet) else None
        self._load = rules if callable(rules) else None
        self.plans: dict[tuple[str, str], Plan] = {}

    def plan(self, community: str, etype: str) -> Plan:
        """What folding one event type means in one community (under its rulebook), worked out once."""
        book = self.rules.for_community(community)
        reception = book.evaluation.reception_points if etype in book.evaluation.reception_events else None
        return HANDLERS.get(etype), tuple(self.rules.sources[book.id].get(etype, ())), reception, book

    @property
    def rules(self) -> RuleSet:
        """The rulebooks the fold scores with (loaded at first use when given lazily)."""
        if self._rules is None:
            if self._load is not None:
                self._rules = self._load()
            else:
                from ..settings import ScoringSettings

                self._rules = ScoringSettings().rules()
        return self._rules

    @property
    def event_types(self) -> tuple[str, ...]:
        """What the runner's consumer is filtered to: the base types and every rulebook's evidence."""
        return tuple(sorted(set(BASE_EVENT_TYPES) | self.rules.event_types()))

    ddl = DDL

    def fold_batch(self, events: Sequence[StoredEvent]) -> FoldBatch:
        """Decode and aggregate ``events`` in memory, ready to write (no I/O)."""
        batch = FoldBatch(self)
        add = batch.add
        for e in events:
            subject = e.subject
            first = subject.find(".") + 1
            etype = subject[subject.rfind(".") + 1 :]
            occurred, data = _decode(e.data)
            add(etype, subject[first : subject.find(".", first)], occurred, data, e.seq)
        return batch.prepare(events[-1].seq)

    async def apply(self, conn: Conn, events: Sequence[StoredEvent]) -> None:
        """Fold a batch: decode, aggregate in memory, write in one statement (plus rare directory ones)."""
        await self.fold_batch(events).write(conn)

    # A replay (shared.projection.replay) stages the next batch while the last one is written.

    async def stage(self, events: Sequence[StoredEvent]) -> FoldBatch:
        """:meth:`fold_batch` in slices, giving the event loop a turn between them (the write in flight)."""
        if len(events) <= STAGE_SLICE:
            return self.fold_batch(events)
        batch = FoldBatch(self)
        add = batch.add
        for i in range(0, len(events), STAGE_SLICE):
            for e in events[i : i + STAGE_SLICE]:
                subject = e.subject
                first = subject.find(".") + 1
                occurred, data = _decode(e.data)
                add(subject[subject.rfind(".") + 1 :], subject[first : subject.find(".", first)], occurred, data, e.seq)
            await asyncio.sleep(0)
        return batch.prepare(events[-1].seq)

    async def write(self, conn: Conn, staged: FoldBatch) -> None:
        """Write a batch :meth:`stage` prepared (the replay's transaction)."""
        await staged.write(conn)


STAGE_SLICE = 2000
_ENVELOPE_DATA = b',"data":{'
_OCCURRED = b'"occurred_at":"'


def _decode(raw: bytes) -> tuple[str, dict[str, Any]]:
    """(``occurred_at``, ``data``) of a stored event, parsing only the ``data`` object (Rust JSON parser).

    Stored events are compact JSON from pydantic: scalar envelope fields, then ``data`` last, so
    the first ``,"data":{`` is the payload's start (a ``"`` inside a string is always escaped).
    Anything else is parsed whole.
    """
    at = raw.find(_OCCURRED)
    start = raw.find(_ENVELOPE_DATA, at)
    if 0 < at < start and raw[-1:] == b"}":
        end = raw.find(b'"', at + 15)
        try:
            return raw[at + 15 : end].decode(), from_json(raw[start + 8 : -1], cache_strings="keys")
        except ValueError:
            pass
    whole = json.loads(raw)
    return whole["occurred_at"], whole["data"]
