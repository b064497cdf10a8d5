"""The secretary's daily digest (每日汇总): missed 5+1 quotas collected into one message a day."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, time

from shared.events import SHANGHAI


def digest_id(community: str, day: date) -> str:
    """The secretary's daily digest of one community and one local day."""
    return f"digest-{community}-{day:%Y%m%d}"[:64]


def digest_due(now: datetime, at: time, last_line_at: datetime, settle_seconds: float) -> bool:
    """Whether a community's open digest goes out at ``now``: past today's digest time and settled
    (scoring closes a day's periods in a burst; the digest waits until no line came for a while)."""
    local = now.astimezone(SHANGHAI)
    today_moment = datetime.combine(local.date(), at, tzinfo=SHANGHAI)
    return local >= today_moment and (now - last_line_at).total_seconds() >= settle_seconds


def missed_items(items: Iterable[dict]) -> list[str]:
    """Names of the 5+1 quota items a closed period missed."""
    return [str(item["item"]) for item in items if not item.get("met", False)]
