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
from shared.outbound import MAX_ANSWER_BYTES, TargetRefused
from shared.service import DUE_SOON_SECONDS, OutboxStatus, Runtime

from ..bootstrap import IssuesDeps
from ..domain import CommandMeta, RecordHotlineFeedback
from ..handlers import execute
from ..metrics import HOTLINE_FEEDBACK
from ..projections import OUTBOX
from ..settings import IssuesSettings

log = structlog.get_logger("gridwork.issues.hotline")


#: Answers worth another try; any other 3xx or 4xx is the hotline's final word (redirects are not followed).
RETRYABLE_STATUSES = frozenset({408, 425, 429})


class _Undelivered(Exception):
    """The hotline did not take a feedback row in this round (``tries`` POSTs were made).

    ``reason`` is short and classified ("HTTP 503", "ConnectError", "target refused (…)"), never the
    hotline's or the HTTP library's own text; ``permanent``: trying again will not help.
    """

    def __init__(self, tries: int, reason: str, *, permanent: bool = False) -> None:
        super().__init__(reason)
        self.tries = tries
        self.reason = reason
        self.permanent = permanent


class _Refused(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


def _retryable(status: int) -> bool:
    """Whether the hotline's answer may change on a retry (a 5xx, a 408/429); any other 4xx is final."""
    return status >= 500 or status in RETRYABLE_STATUSES


async def _post_once(client: httpx.AsyncClient, url: str, payload: dict, headers: dict[str, str]) -> None:
    """One POST; reads at most :data:`MAX_ANSWER_BYTES` of the answer, raises on anything but a 2xx."""
    async with client.stream("POST", url, json=payload, headers=headers, follow_redirects=False) as reply:
        read = 0
        async for chunk in reply.aiter_raw():
            read += len(chunk)
            if read > MAX_ANSWER_BYTES:
                break  # the rest is never read; the connection is closed with the stream
        if not 200 <= reply.status_code < 300:
            raise _Refused(reply.status_code)


async def _post(client: httpx.AsyncClient, settings: IssuesSettings, row: asyncpg.Record, note: str | None) -> int:
    """POST one feedback row (``note``: its note with the vault's texts revealed), retrying with
    backoff (stamina) what may pass; returns the attempts it took."""
    assert settings.hotline_callback_url
    url = settings.hotline_callback_url
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
        await settings.outbound_policy().check_url(url)
        async for attempt in stamina.retry_context(
            on=lambda err: isinstance(err, httpx.HTTPError) or (isinstance(err, _Refused) and _retryable(err.status)),
            attempts=settings.hotline_retry_attempts,
            timeout=None,
            wait_initial=settings.hotline_retry_wait_initial,
            wait_max=settings.hotline_retry_wait_max,
            wait_jitter=settings.hotline_retry_wait_initial,
        ):
            with attempt:
                tries += 1
                await _post_once(client, url, payload, headers)
    except TargetRefused as err:
        raise _Undelivered(tries, f"target refused ({err.reason})", permanent=err.permanent) from None
    except _Refused as err:
        HOTLINE_FEEDBACK.labels("failed").inc(tries)
        raise _Undelivered(tries, f"HTTP {err.status}", permanent=not _retryable(err.status)) from None
    except httpx.HTTPError as err:
        HOTLINE_FEEDBACK.labels("failed").inc(tries)
        raise _Undelivered(tries, type(err).__name__) from None
    HOTLINE_FEEDBACK.labels("failed").inc(tries - 1)
    HOTLINE_FEEDBACK.labels("delivered").inc()
    return tries


async def deliver_feedback_once(client: httpx.AsyncClient, *, deps: IssuesDeps, limit: int = 20) -> int:
    """Deliver due outbox rows, oldest first, each order's changes in order; returns how many went out."""
    settings = deps.settings
    if not settings.hotline_callback_url:
        return 0
    delivered = 0
    async with deps.pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(
            f"""SELECT o.* FROM {OUTBOX}.outbox o
                WHERE o.sent_at IS NULL AND o.dead_at IS NULL AND o.next_attempt_at <= now()
                  AND NOT EXISTS (SELECT 1 FROM {OUTBOX}.outbox e WHERE e.community = o.community
                                  AND e.issue_id = o.issue_id AND e.sent_at IS NULL AND e.dead_at IS NULL
                                  AND e.seq < o.seq)
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
                    f"UPDATE {OUTBOX}.outbox SET attempts = $2, last_error = $3, next_attempt_at = $4, "
                    "dead_at = CASE WHEN $5 THEN now() END WHERE feedback_id = $1",
                    row["feedback_id"],
                    total,
                    err.reason,
                    now() + timedelta(seconds=wait),
                    err.permanent,
                )
                log.warning(
                    "hotline_feedback_refused" if err.permanent else "hotline_feedback_failed",
                    order_no=row["order_no"],
                    status=row["status"],
                    attempts=total,
                    error=err.reason,
                )
                if err.permanent:
                    continue  # the hotline refused this one for good: it is kept, dead, and the next goes
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
            f"SELECT count(*) FILTER (WHERE dead_at IS NULL AND next_attempt_at <= soon.at) AS due, "
            f"count(*) FILTER (WHERE dead_at IS NULL AND next_attempt_at > soon.at) AS later, "
            f"count(*) FILTER (WHERE dead_at IS NOT NULL) AS dead "
            f"FROM {OUTBOX}.outbox, (SELECT now() + make_interval(secs => $1) AS at) soon WHERE sent_at IS NULL",
            DUE_SOON_SECONDS,
        )
    assert row is not None  # an aggregate query always returns its row
    if not deps.settings.hotline_callback_url:
        return OutboxStatus("hotline_feedback", 0, held=row["due"] + row["later"], dead=row["dead"])
    return OutboxStatus("hotline_feedback", row["due"], scheduled=row["later"], dead=row["dead"])
