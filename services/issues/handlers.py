"""Application functions: load an issue's history, decide, append — with keyword-only dependencies.

Version checks: a command carrying the caller's ``expected_revision`` is refused with 409 when the
issue has moved on, unless the change that moved it is exactly what this command would have done
(a retried request whose first answer was lost): then the retry is answered as a duplicate.
System commands (timers, reactions) pass no revision; they are idempotent by construction and
simply re-decide on a fresh read when they lose a race.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import structlog

from shared.errors import Conflict, NotFound
from shared.events import Event, uuid7
from shared.events.issues import IssueEscalated
from shared.eventstore import HDR_VERSION, ConcurrencyError, aggregate_filter

from .bootstrap import IssuesDeps
from .domain import (
    CommandMeta,
    IllegalTransition,
    IssueState,
    ReceiveHotlineOrder,
    RecordResidentCallback,
    ReportIssue,
    StaleVersion,
    decide,
    evolve,
    fold,
    initial_state,
    same_effect,
)
from .domain.hotline import already_answered
from .domain.state import UNVERSIONED
from .metrics import ESCALATIONS, ISSUE_EVENTS, NO_TARGET

log = structlog.get_logger("gridwork.issues")


@dataclass(frozen=True)
class History:
    """An issue's stored events, its stream version and the stream sequence of its last event."""

    events: list[Event] = field(default_factory=list)
    version: int = 0
    last_seq: int = 0

    @cached_property
    def state(self) -> IssueState:
        """The issue as its history folds (status ``new`` when it has none); folded once."""
        return fold(self.events)


@dataclass(frozen=True)
class Outcome:
    """What a command did: the issue after it, the events appended now, and whether it was a retry."""

    state: IssueState
    events: list[Event]
    duplicate: bool = False


def _count(events: list[Event]) -> None:
    for event in events:
        ISSUE_EVENTS.labels(event.type).inc()
        if isinstance(event, IssueEscalated):
            ESCALATIONS.labels(event.data.reason, event.data.to_level, event.data.target or NO_TARGET).inc()


def new_issue_id(community: str, idempotency_key: str | None = None) -> str:
    """A fresh issue id, or a stable one derived from the client's Idempotency-Key."""
    if idempotency_key:
        return "is-" + hashlib.sha256(f"{community}:{idempotency_key}".encode()).hexdigest()[:26]
    return "is-" + uuid7().hex


async def read_history(community: str, issue_id: str, *, deps: IssuesDeps) -> History:
    """Every stored event of one issue (issues are short-lived: no snapshots needed)."""
    store = deps.store
    stored = await store.read(aggregate_filter(store.ns, community, "issues", "issue", issue_id))
    if not stored:
        return History()
    events = [s.event() for s in stored]
    version = int((stored[-1].headers or {}).get(HDR_VERSION, len(stored)))
    return History(events, version, stored[-1].seq)


async def existing_history(
    community: str, issue_id: str, *, deps: IssuesDeps, what: str | None = None, field: str = "issue_id"
) -> History:
    """An issue's history; 404 naming ``field`` (and ``what`` it is, default the issue) when it does not exist."""
    history = await read_history(community, issue_id, deps=deps)
    if history.state.status == "new":
        raise NotFound(f"{what or f'issue {issue_id}'} not found", field=field)
    return history


async def _is_retry(
    history: History, expected_revision: int, command: object, meta: CommandMeta, *, deps: IssuesDeps
) -> bool:
    """Whether the changes after ``expected_revision`` are exactly what ``command`` would produce there."""
    state = initial_state()
    rest = list(history.events)
    while rest and state.revision < expected_revision:
        state = evolve(state, rest.pop(0))
    if state.revision != expected_revision:
        return False
    try:
        produced = decide(state, command, meta, policy=deps.policy)
    except Exception:
        return False
    following = [e for e in rest if not isinstance(e, UNVERSIONED)][: len(produced)]
    # Stored events carry the vault's references for their free text: compare sealed with sealed.
    sealed = await deps.vault.seal_events(produced, store=False)
    return bool(produced) and same_effect(sealed, following)


async def execute(
    *,
    deps: IssuesDeps,
    community: str,
    issue_id: str,
    command: object,
    meta: CommandMeta,
    expected_revision: int | None = None,
    authorize: Callable[[IssueState], None] | None = None,
    attempts: int = 8,
) -> Outcome:
    """Run one command on one issue: read, check the version, decide, append (retrying lost races).

    ``authorize``: the caller's case-level check on the issue as read (it raises to refuse), run
    before the version check — a refusal is a 403 whatever version the caller names — and again on
    each re-read, so the decision is taken on the very state the command applies to."""
    store, policy = deps.store, deps.policy
    creates = isinstance(command, (ReportIssue, ReceiveHotlineOrder))
    if creates and expected_revision == 0:
        # A new issue is by far the common case: append at version 0 without reading first; if the
        # issue exists after all, fall through to the careful path (retry detection, 409).
        fresh = IssueState(issue_id=issue_id, community=community)
        events = decide(fresh, command, meta, policy=policy)
        try:
            result = await store.append(events, 0)
        except ConcurrencyError:
            pass
        else:
            if not result.duplicate:
                _count(events)
                return Outcome(fold(events, fresh), events)
            return Outcome((await read_history(community, issue_id, deps=deps)).state, [], duplicate=True)
    for _ in range(attempts):
        history = await read_history(community, issue_id, deps=deps)
        state = history.state
        if state.status == "new" and not state.issue_id:
            state = state.model_copy(update={"issue_id": issue_id, "community": community})
        if state.status == "new" and not creates:
            raise NotFound(f"issue {issue_id} not found", field="issue_id")
        if authorize is not None and state.status != "new":
            authorize(state)
        if expected_revision is not None and expected_revision != state.revision:
            if await _is_retry(history, expected_revision, command, meta, deps=deps):
                return Outcome(state, [], duplicate=True)
            if creates:
                raise IllegalTransition(
                    f"issue {issue_id} already exists with other content",
                    current_state=state.status,
                    version=state.revision,
                )
            raise StaleVersion(
                f"issue {issue_id} is at version {state.revision}, not {expected_revision}",
                current_state=state.status,
                version=state.revision,
                expected_version=expected_revision,
            )
        events = decide(state, command, meta, policy=policy)
        if not events:
            return Outcome(state, [])
        try:
            result = await store.append(events, history.version, expected_seq=history.last_seq)
        except ConcurrencyError:
            continue  # someone else appended meanwhile: re-read and decide again
        if not result.duplicate:
            _count(events)
        after = (
            fold(events, state) if not result.duplicate else (await read_history(community, issue_id, deps=deps)).state
        )
        return Outcome(after, [] if result.duplicate else events, duplicate=result.duplicate)
    raise Conflict(f"issue {issue_id} kept changing; try again")


# ---------------------------------------------------------------- the 12345 hotline


async def receive_hotline_order(command: ReceiveHotlineOrder, *, deps: IssuesDeps, meta: CommandMeta) -> Outcome:
    """Take a work order; a re-sent order number is stored once (answered as a duplicate)."""
    community = meta.community
    try:
        return await execute(
            deps=deps,
            community=community,
            issue_id=command.issue_id,
            command=command,
            meta=meta,
            expected_revision=0,
        )
    except IllegalTransition:  # the order number is known: the hotline re-sent it
        state = (await read_history(community, command.issue_id, deps=deps)).state
        if state.hotline_order_no != command.order_no:  # an issue that is not this order holds the id
            raise IllegalTransition(
                f"issue {command.issue_id} exists and is not work order {command.order_no}",
                current_state=state.status,
                version=state.revision,
            ) from None
        return Outcome(state, [], duplicate=True)


async def record_resident_callback(
    issue_id: str, command: RecordResidentCallback, *, deps: IssuesDeps, meta: CommandMeta
) -> Outcome:
    """The resident's answer on the call-back; the same answer sent again is a duplicate, not a 409."""
    community = meta.community
    try:
        return await execute(deps=deps, community=community, issue_id=issue_id, command=command, meta=meta)
    except IllegalTransition:
        history = await read_history(community, issue_id, deps=deps)
        if already_answered(history.events, command):
            return Outcome(history.state, [], duplicate=True)
        raise
