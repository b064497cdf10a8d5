"""A phone's offline batch ↔ its records' commands and their answers, for the sync route and the
ingest fast path."""

from __future__ import annotations

from shared.auth import Principal
from shared.errors import DomainError, Forbidden, Invalid
from shared.events import now

from .. import handlers
from ..bootstrap import VisitsDeps
from ..domain.work import ActingWorker
from ..handlers.sync import OfflineCommand
from ..schemas import SyncAnswer, SyncBatch, SyncRecord, SyncResult
from .commands import offline_command


async def sync_for(community: str, body: SyncBatch, principal: Principal, deps: VisitsDeps) -> SyncAnswer:
    """A phone's batch for an authenticated grid worker: each record stored once and answered."""
    if not principal.worker_id:
        raise Forbidden("the token carries no worker_id", field="worker_id")
    records = body.records
    if len(records) > deps.settings.sync_batch_max:
        raise Invalid(f"at most {deps.settings.sync_batch_max} records per batch", field="records")
    worker = ActingWorker(principal.worker_id, principal.grid)
    current = now()
    results: list[SyncResult | None] = [None] * len(records)
    commands: list[OfflineCommand] = []
    positions: list[int] = []  # the record each command came from
    seen: set[tuple[str, str]] = set()
    for i, rec in enumerate(records):
        if (rec.kind, rec.client_id) in seen:
            results[i] = _answer(rec, "duplicate")  # the same record twice in one batch
            continue
        seen.add((rec.kind, rec.client_id))
        try:
            commands.append(offline_command(rec, community, worker.worker_id, deps.settings, current))
        except DomainError as err:
            results[i] = _refused(rec, err)
            continue
        positions.append(i)
    outcomes = await handlers.store_offline_work(community, commands, worker, deps=deps)
    for i, outcome in zip(positions, outcomes, strict=True):
        results[i] = _refused(records[i], outcome) if isinstance(outcome, DomainError) else _answer(records[i], outcome)
    final = [r for r in results if r is not None]
    assert len(final) == len(results)
    return SyncAnswer(
        accepted=sum(r.status == "accepted" for r in final),
        duplicates=sum(r.status == "duplicate" for r in final),
        rejected=sum(r.status == "rejected" for r in final),
        results=final,
    )


def _answer(rec: SyncRecord, status: str) -> SyncResult:
    # model_construct: 500 answers per batch, every value already checked.
    return SyncResult.model_construct(
        client_id=rec.client_id, kind=rec.kind, status=status, code=None, field=None, reason=None
    )


def _refused(rec: SyncRecord, err: DomainError) -> SyncResult:
    return SyncResult(
        client_id=rec.client_id, kind=rec.kind, status="rejected", code=err.code, field=err.field, reason=err.message
    )
