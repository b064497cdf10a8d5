"""The 12345 hotline's feedback outbox worker: status changes of work orders go back to the hotline.

Every status change of a hotline issue lands in the ``hotline_feedback`` outbox (same transaction
as the projection's checkpoint, :class:`services.issues.projections.HotlineOutbox`);
:func:`deliver_hotline_feedback` POSTs each row to ``GRIDWORK_HOTLINE_CALLBACK_URL`` in order,
retrying with backoff until the hotline takes it, then records ``HotlineFeedbackSent``
(deterministic id: once per status change).  Each POST carries the feedback id as
``Idempotency-Key`` so the hotline can drop a repeat after a crash between its answer and our
record.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from uuid import UUID

import asyncpg
import httpx
import stamina
import structlog

from shared.events import now
from shared.service import DUE_SOON_SECONDS, OutboxStatus, Runtime

from ..bootstrap import IssuesDeps
from ..domain import CommandMeta, RecordHotlineFeedback
from ..handlers import execute
from ..metrics import HOTLINE_FEEDBACK
from ..projections import OUTBOX
from ..settings import IssuesSettings

log = structlog.get_logger("gridwork.issues.hotline")


async def _post(client: httpx.AsyncClient, settings: IssuesSettings, row: asyncpg.Record, note: str | None) -> int:
    """POST one feedback row (``note``: its note with the vault's texts revealed), retrying with
    backoff (stamina); returns the attempts it took."""
    assert settings.hotline_callback_url
    payload = {
        "feedback_id": row["feedback_id"],
        "order_no": row["order_no"],
        "issue_id": row["issue_id"],
        "community": row["community"],
        "status": row["status"],
        "note": note,
        "occurred_at": row["occurred_at"].isoformat(),
    }
    headers = {"Idempotency-Key": row["feedback_id"]}
    if settings.hotline_callback_token:
        headers["Authorization"] = f"Bearer {settings.hotline_callback_token}"
    tries = 0
    try:
        async for attempt in stamina.retry_context(
            on=httpx.HTTPError,
            attempts=settings.hotline_retry_attempts,
            timeout=None,
            wait_initial=settings.hotline_retry_wait_initial,
            wait_max=settings.hotline_retry_wait_max,
            wait_jitter=settings.hotline_retry_wait_initial,
        ):
            with attempt:
                tries += 1
                reply = await client.post(settings.hotline_callback_url, json=payload, headers=headers)
                reply.raise_for_status()
    except httpx.HTTPError as err:
        HOTLINE_FEEDBACK.labels("failed").inc(tries)
        raise _Undelivered(tries, err) from err
    HOTLINE_FEEDBACK.labels("failed").inc(tries - 1)
    HOTLINE_FEEDBACK.labels("delivered").inc()
    return tries


class _Undelivered(Exception):
    """The hotline did not take a feedback row in this round (``tries`` POSTs were made)."""

    def __init__(self, tries: int, err: Exception) -> None:
        super().__init__(repr(err))
        self.tries = tries


async def deliver_feedback_once(client: httpx.AsyncClient, *, deps: IssuesDeps, limit: int = 20) -> int:
    """Deliver due outbox rows, oldest first, each order's changes in order; returns how many went out."""
    settings = deps.settings
    if not settings.hotline_callback_url:
        return 0
    delivered = 0
    async with deps.pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(
            f"""SELECT o.* FROM {OUTBOX}.outbox o
                WHERE o.sent_at IS NULL AND o.next_attempt_at <= now()
                  AND NOT EXISTS (SELECT 1 FROM {OUTBOX}.outbox e WHERE e.community = o.community
                                  AND e.issue_id = o.issue_id AND e.sent_at IS NULL AND e.seq < o.seq)
                ORDER BY o.seq LIMIT $1 FOR UPDATE SKIP LOCKED""",
            limit,
        )
        for row in rows:
            try:
                note = await deps.vault.reveal(row["community"], row["note"])
                tries = await _post(client, settings, row, note)
            except _Undelivered as err:
                total = row["attempts"] + err.tries
                wait = min(settings.hotline_retry_wait_max, settings.hotline_retry_wait_initial * 2 ** min(total, 16))
                await conn.execute(
                    f"UPDATE {OUTBOX}.outbox SET attempts = $2, last_error = $3, next_attempt_at = $4 "
                    "WHERE feedback_id = $1",
                    row["feedback_id"],
                    total,
                    str(err)[:1000],
                    now() + timedelta(seconds=wait),
                )
                log.warning(
                    "hotline_feedback_failed",
                    order_no=row["order_no"],
                    status=row["status"],
                    attempts=total,
                    error=str(err),
                )
                break  # the hotline is unreachable: later rows wait for the next round
            total = row["attempts"] + tries
            meta = CommandMeta(
                community=row["community"],
                actor="issues-hotline",
                at=now(),
                key=f"feedback:{row['feedback_id']}",
                causation_id=UUID(row["feedback_id"]),
            )
            await execute(
                deps=deps,
                community=row["community"],
                issue_id=row["issue_id"],
                command=RecordHotlineFeedback(row["feedback_id"], row["status"], row["note"], total),
                meta=meta,
            )
            await conn.execute(
                f"UPDATE {OUTBOX}.outbox SET attempts = $2, sent_at = COALESCE(sent_at, now()), last_error = NULL "
                "WHERE feedback_id = $1",
                row["feedback_id"],
                total,
            )
            delivered += 1
    return delivered


async def deliver_hotline_feedback(runtime: Runtime[IssuesDeps]) -> None:
    """Background task: work off the hotline feedback outbox, forever."""
    deps = runtime.deps
    settings = deps.settings
    async with httpx.AsyncClient(timeout=settings.hotline_callback_timeout_seconds) as client:
        while True:
            sent = await deliver_feedback_once(client, deps=deps)
            if not sent:
                await asyncio.sleep(settings.hotline_outbox_poll_seconds)


async def hotline_feedback_outbox(runtime: Runtime[IssuesDeps]) -> OutboxStatus:
    """Status feedback still owed to 12345: due soon, waiting out a long backoff, or held (no callback URL)."""
    deps = runtime.deps
    async with deps.pool.acquire(timeout=2) as conn:
        row = await conn.fetchrow(
            f"SELECT count(*) FILTER (WHERE next_attempt_at <= soon.at) AS due, "
            f"count(*) FILTER (WHERE next_attempt_at > soon.at) AS later "
            f"FROM {OUTBOX}.outbox, (SELECT now() + make_interval(secs => $1) AS at) soon WHERE sent_at IS NULL",
            DUE_SOON_SECONDS,
        )
    assert row is not None  # an aggregate query always returns its row
    if not deps.settings.hotline_callback_url:
        return OutboxStatus("hotline_feedback", 0, held=row["due"] + row["later"])
    return OutboxStatus("hotline_feedback", row["due"], scheduled=row["later"])
