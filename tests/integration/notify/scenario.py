"""Bairuijing's directory and the events of the four cases, shared by the notify tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import httpx

from services.notify.receiver import LocalReceiver
from shared.events import SHANGHAI, Event, Place
from shared.events.issues import IssueEscalated, IssueEscalatedData, IssueReported, IssueReportedData
from shared.events.scoring import QuotaItemResult, QuotaPeriodClosed, QuotaPeriodClosedData
from shared.eventstore import EventStore
from shared.settings import Settings
from tests.harness import auth

COMMUNITY = "bairuijing"
SMS_TOKEN = "sms-gateway-token-7f3a"
WEBHOOK_SECRETS = {
    "police-duty": "whsec-police-duty-0123456789abcdef",
    "police-officer": "whsec-police-officer-fedcba9876543210",
}
WECOM_KEYS = {
    "property": "3f1c2e4d-0000-4b5a-9c8d-wuye00000001",
    "secretary": "3f1c2e4d-0000-4b5a-9c8d-shuji0000002",
}
DUTY_PHONE = "+862787001110"


@dataclass
class Inbox:
    """aiosmtpd handler: keeps every message the SMTP server accepted."""

    port: int = 0
    messages: list[EmailMessage] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))  # type: ignore[arg-type]
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if m["To"] == address]


def directory(receiver: LocalReceiver) -> dict[str, dict[str, Any]]:
    """Who receives what in Bairuijing (百瑞景社区), Zhongnan Road street."""
    return {
        "police-duty": {
            "kind": "police",
            "desk": "duty_line",
            "name": "中南路派出所值班室",
            "agency": "zhongnanlu-police",
            "channels": {
                "webhook": {"url": f"{receiver.url}/webhook/police-duty", "secret": WEBHOOK_SECRETS["police-duty"]},
                "sms": {"number": DUTY_PHONE},
            },
        },
        "police-officer": {
            "kind": "police",
            "desk": "community_officer",
            "name": "社区民警",
            "agency": "zhongnanlu-police",
            "channels": {
                "webhook": {
                    "url": f"{receiver.url}/webhook/police-officer",
                    "secret": WEBHOOK_SECRETS["police-officer"],
                }
            },
        },
        "property": {
            "kind": "property_management",
            "name": "百瑞景物业服务中心",
            "agency": "bairuijing-property",
            "channels": {
                "wecom": {"url": f"{receiver.url}/wecom/send?key={WECOM_KEYS['property']}"},
                "email": {"address": "wuye@bairuijing.test"},
            },
        },
        "street-community-building": {
            "kind": "street_office",
            "desk": "community_building",
            "name": "Zhongnan Road street, community building office",
            "language": "en",
            "channels": {"email": {"address": "planning@zhongnanlu.test"}},
        },
        "secretary": {
            "kind": "secretary",
            "name": "百瑞景社区书记",
            "channels": {
                "email": {"address": "shuji@bairuijing.test"},
                "wecom": {"url": f"{receiver.url}/wecom/send?key={WECOM_KEYS['secretary']}"},
            },
        },
    }


async def register_directory(
    client: httpx.AsyncClient, settings: Settings, receiver: LocalReceiver, only: set[str] | None = None
) -> None:
    """The secretary fills in the community's directory through the API."""
    headers = auth(settings, "secretary", community=COMMUNITY)
    for rid, body in directory(receiver).items():
        if only is not None and rid not in only:
            continue
        response = await client.put(f"/v1/communities/{COMMUNITY}/recipients/{rid}", json=body, headers=headers)
        assert response.status_code in (200, 201), response.text


def at(text: str) -> datetime:
    """A local (Asia/Shanghai) time, e.g. at("2025-04-14 23:40")."""
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)


def reported(
    issue_id: str,
    category: str,
    subcategory: str,
    description: str,
    *,
    severity: str = "medium",
    place: Place | None = None,
    when: datetime,
) -> IssueReported:
    return IssueReported.new(
        community=COMMUNITY,
        aggregate_id=issue_id,
        actor="w07",
        occurred_at=when,
        idempotency_key="report",
        data=IssueReportedData(
            issue_id=issue_id,
            category=category,  # type: ignore[arg-type]
            subcategory=subcategory,
            severity=severity,  # type: ignore[arg-type]
            place=place or Place(),
            description=description,
            reported_by="w07",
        ),
    )


def escalated(
    issue: IssueReported, *, to_level: str, target: str | None, reason: str = "severity", when: datetime, n: int = 1
) -> IssueEscalated:
    d = issue.data
    return IssueEscalated.new(
        community=COMMUNITY,
        aggregate_id=d.issue_id,
        actor="issues",
        occurred_at=when,
        idempotency_key=f"escalate-{n}",
        data=IssueEscalatedData(
            issue_id=d.issue_id,
            from_level="building",
            to_level=to_level,  # type: ignore[arg-type]
            target=target,  # type: ignore[arg-type]
            reason=reason,  # type: ignore[arg-type]
            category=d.category,
            subcategory=d.subcategory,
            severity=d.severity,
        ),
    )


async def report_and_escalate(store: EventStore, issue: IssueReported, escalation: IssueEscalated) -> None:
    """Feed a problem's report and its escalation into the real stream."""
    await store.append([issue], 0)
    await store.append([escalation], 1)


def quota_closed(worker: str, day: str, missed: list[str]) -> QuotaPeriodClosed:
    items = ["hours_in_grid", "households_contacted", "small_problem", "special_visit"]
    return QuotaPeriodClosed.new(
        community=COMMUNITY,
        aggregate_id=f"{worker}-{day}",
        actor="scoring",
        occurred_at=at(f"{day} 23:59"),
        idempotency_key="close",
        data=QuotaPeriodClosedData(
            worker_id=worker,
            period="day",
            period_key=day,
            start=datetime.fromisoformat(day).date(),
            end=datetime.fromisoformat(day).date(),
            items=[
                QuotaItemResult(item=i, target=5, actual=0 if i in missed else 5, met=i not in missed) for i in items
            ],
            points=0,
            rulebook="bairuijing-5plus1",
            rulebook_version=1,
        ),
    )


async def notify_events(store: EventStore, settings: Settings, event_type: str | None = None) -> list[Event]:
    """Every event the notify service appended (optionally one type)."""
    stored = await store.read(f"{settings.namespace}.*.notify.>")
    events = [s.event() for s in stored]
    return [e for e in events if event_type is None or e.type == event_type]
