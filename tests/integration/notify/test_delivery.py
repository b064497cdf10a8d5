"""Delivery that can be trusted: receivers that go down, notify restarting, budgets running out."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

from services.notify.app import build_app
from services.notify.receiver import LocalReceiver
from services.notify.settings import NotifySettings
from shared.events import SHANGHAI, Place
from shared.eventstore import EventStore
from shared.settings import Settings
from tests.harness import auth, eventually, running

from .conftest import notify_settings_for
from .scenario import (
    COMMUNITY,
    Inbox,
    at,
    escalated,
    notify_events,
    register_directory,
    report_and_escalate,
    reported,
)


def daytime_noise(n: int) -> tuple:
    """A daytime noise complaint escalated to the police: it goes to the community police officer."""
    issue = reported(
        f"noise-{n:03d}",
        "conflicts_disputes",
        "noise",
        f"2期{n}栋装修噪音，协调未果",
        place=Place(compound="百瑞景", phase="2", building=str(n)),
        when=at("2025-04-14 10:00") + timedelta(minutes=n),
    )
    return issue, escalated(issue, to_level="community", target="police", when=at("2025-04-14 11:00"))


async def test_a_receiver_that_is_down_for_a_while_gets_every_message_once_it_is_back(
    notify_settings: NotifySettings, receiver: LocalReceiver, feed: EventStore
) -> None:
    app = build_app(notify_settings)
    async with running(app) as client:
        await register_directory(client, notify_settings, receiver, only={"police-officer"})
        await receiver.stop()  # the police station's system is down
        for n in range(8):
            await report_and_escalate(feed, *daytime_noise(n))

        async def retried_while_down() -> bool:
            failed = await notify_events(feed, notify_settings, "NotificationFailed")
            return len({e.aggregate_id for e in failed}) == 8 and len(failed) >= 16

        await eventually(retried_while_down, timeout=30, what="every notification failing and retrying")
        await receiver.start()  # back on the same port

        await eventually(
            lambda: _count(receiver, "/webhook/police-officer", 8), timeout=30, what="all 8 once it is back"
        )
        ids = Counter(r.delivery_id for r in receiver.on("/webhook/police-officer"))
        assert len(ids) == 8 and set(ids.values()) == {1}
        issues = sorted(r.json()["facts"]["issue_id"] for r in receiver.on("/webhook/police-officer"))
        assert issues == [f"noise-{n:03d}" for n in range(8)]
        delivered = await eventually(
            lambda: _events(feed, notify_settings, "NotificationDelivered", 8), timeout=30, what="delivered events"
        )
        assert len({e.aggregate_id for e in delivered}) == 8
        assert await notify_events(feed, notify_settings, "NotificationDeadLettered") == []


async def test_a_restart_of_notify_in_the_middle_duplicates_nothing(
    settings: Settings, receiver: LocalReceiver, smtp: Inbox, feed: EventStore
) -> None:
    receiver.delay = 0.2  # a slow receiver: sends are in flight when notify stops
    config = notify_settings_for(settings, receiver, smtp, notify_concurrency=2)
    first = build_app(config)
    async with running(first) as client:
        await register_directory(client, config, receiver, only={"police-officer"})
        for n in range(12):
            await report_and_escalate(feed, *daytime_noise(n))
        await eventually(lambda: _count(receiver, "/webhook/police-officer", 1, at_least=True), timeout=30)
    # notify is down: more escalations pile up in the stream meanwhile
    sent_before = len(receiver.on("/webhook/police-officer"))
    assert sent_before < 12, "notify stopped after everything was sent: no restart in the middle"

    second = build_app(config)
    async with running(second):
        for n in range(12, 20):
            await report_and_escalate(feed, *daytime_noise(n))
        await eventually(lambda: _count(receiver, "/webhook/police-officer", 20), timeout=30, what="all 20")
        ids = Counter(r.delivery_id for r in receiver.on("/webhook/police-officer"))
        assert len(ids) == 20 and set(ids.values()) == {1}, "a notification arrived twice"
        sent = await eventually(lambda: _events(feed, config, "NotificationDelivered", 20), timeout=30, what="events")
        assert len({e.aggregate_id for e in sent}) == 20
        assert len(await notify_events(feed, config, "NotificationSent")) == 20


async def test_after_the_retry_budget_a_notification_is_dead_lettered_with_its_last_error(
    settings: Settings, receiver: LocalReceiver, smtp: Inbox, feed: EventStore
) -> None:
    config = notify_settings_for(settings, receiver, smtp, notify_max_attempts=3)
    app = build_app(config)
    async with running(app) as client:
        await register_directory(client, config, receiver, only={"police-officer", "property"})
        # property management's robot key was revoked: WeCom answers errcode 93000, retrying is pointless
        await client.put(
            f"/v1/communities/{COMMUNITY}/recipients/property",
            json={
                "kind": "property_management",
                "name": "百瑞景物业服务中心",
                "channels": {"wecom": {"url": f"{receiver.url}/wecom/send?key=revoked-robot-key-0000"}},
            },
            headers=auth(config, "secretary", community=COMMUNITY),
        )
        receiver.failing["/webhook/police-officer"] = 500  # the police system answers 500 to everything
        await report_and_escalate(feed, *daytime_noise(1))
        clutter = reported(
            "clutter-4-4",
            "safety_hazards",
            "stairwell_clutter",
            "4期4栋楼道堆物",
            place=Place(phase="4", building="4"),
            when=at("2025-04-15 09:10"),
        )
        await report_and_escalate(
            feed,
            clutter,
            escalated(clutter, to_level="compound", target="property_management", when=at("2025-04-15 09:20")),
        )

        async def dead() -> list[dict]:
            rows = (
                await client.get(
                    f"/v1/communities/{COMMUNITY}/notifications",
                    params={"state": "dead"},
                    headers=auth(config, "secretary", community=COMMUNITY),
                )
            ).json()["notifications"]
            return rows if len(rows) == 2 else []

        rows = {r["channel"]: r for r in await eventually(dead, timeout=30, what="two dead letters")}
        assert rows["webhook"]["attempts"] == 3 and rows["webhook"]["last_error"] == "webhook: HTTP 500"
        assert rows["wecom"]["attempts"] == 1 and rows["wecom"]["last_error"] == "wecom: errcode 93000"
        dead_events = await notify_events(feed, config, "NotificationDeadLettered")
        assert sorted(e.data.error for e in dead_events) == ["webhook: HTTP 500", "wecom: errcode 93000"]
        failed = Counter(e.aggregate_id for e in await notify_events(feed, config, "NotificationFailed"))
        assert sorted(failed.values()) == [1, 3]
        assert "revoked-robot-key" not in " ".join(e.data.error for e in dead_events)

        # The police system is fixed; the secretary gives the dead letter a fresh budget.
        receiver.failing.clear()
        retry = await client.post(
            f"/v1/communities/{COMMUNITY}/notifications/{rows['webhook']['notification_id']}/retry",
            headers=auth(config, "secretary", community=COMMUNITY),
        )
        assert retry.json()["state"] == "pending"
        await eventually(lambda: _count(receiver, "/webhook/police-officer", 1), timeout=30)


async def test_quiet_hours_defer_routine_messages_but_not_urgent_police_escalations(
    settings: Settings, receiver: LocalReceiver, smtp: Inbox, feed: EventStore
) -> None:
    config = notify_settings_for(settings, receiver, smtp)
    app = build_app(config)
    async with running(app) as client:
        await register_directory(client, config, receiver, only={"police-duty", "property"})
        local = datetime.now(SHANGHAI)
        quiet = {
            "start": (local - timedelta(hours=1)).time().replace(microsecond=0).isoformat(),
            "end": (local + timedelta(hours=1)).time().replace(microsecond=0).isoformat(),
        }
        # Both have quiet hours right now.
        for rid, body in (
            (
                "property",
                {
                    "kind": "property_management",
                    "name": "物业",
                    "channels": {"email": {"address": "wuye@bairuijing.test"}},
                },
            ),
            (
                "police-duty",
                {
                    "kind": "police",
                    "desk": "duty_line",
                    "name": "值班室",
                    "channels": {"sms": {"number": "+862787001110"}},
                },
            ),
        ):
            response = await client.put(
                f"/v1/communities/{COMMUNITY}/recipients/{rid}",
                json={**body, "quiet_hours": quiet},
                headers=auth(config, "secretary", community=COMMUNITY),
            )
            assert response.status_code == 200, response.text
        clutter = reported("clutter-q", "safety_hazards", "stairwell_clutter", "楼道堆物", when=at("2025-04-15 23:10"))
        await report_and_escalate(
            feed,
            clutter,
            escalated(clutter, to_level="compound", target="property_management", when=at("2025-04-15 23:20")),
        )
        noise = reported(
            "noise-q", "conflicts_disputes", "noise", "深夜喊麦", severity="high", when=at("2025-04-15 23:30")
        )
        await report_and_escalate(
            feed, noise, escalated(noise, to_level="community", target="police", when=at("2025-04-15 23:35"))
        )
        await eventually(lambda: _count(receiver, "/sms", 1), timeout=30, what="the urgent SMS")

        listing = await client.get(
            f"/v1/communities/{COMMUNITY}/notifications",
            params={"subject_ref": "clutter-q"},
            headers=auth(config, "secretary", community=COMMUNITY),
        )
        (deferred,) = listing.json()["notifications"]
        assert deferred["state"] == "pending" and deferred["attempts"] == 0
        waits = datetime.fromisoformat(deferred["due_at"]) - datetime.now(SHANGHAI)
        assert timedelta(minutes=55) < waits <= timedelta(hours=1)  # until the property's quiet hours end
        assert smtp.to("wuye@bairuijing.test") == []


async def _count(receiver: LocalReceiver, path: str, n: int, at_least: bool = False) -> bool:
    got = len(receiver.on(path))
    return got >= n if at_least else got == n


async def _events(store, settings, event_type, n):  # type: ignore[no-untyped-def]
    events = await notify_events(store, settings, event_type)
    return events if len(events) == n else None


async def test_a_message_that_cannot_be_sent_ends_dead_with_its_reason_never_in_a_loop(
    settings: Settings, receiver: LocalReceiver, smtp: Inbox, feed: EventStore
) -> None:
    # An Open311 compound with a CR/LF becomes the e-mail's subject: the mail library refuses the
    # header (a ValueError, which no channel classifies).  Each try counts; the budget ends it, dead.
    config = notify_settings_for(settings, receiver, smtp, notify_max_attempts=3, notify_lease_seconds=5)
    secretary = auth(config, "secretary", community=COMMUNITY)
    app = build_app(config)
    async with running(app) as client:
        body = {
            "kind": "property_management",
            "name": "物业",
            "channels": {"email": {"address": "wuye@bairuijing.test"}},
        }
        response = await client.put(f"/v1/communities/{COMMUNITY}/recipients/property", json=body, headers=secretary)
        assert response.status_code == 201, response.text
        clutter = reported(
            "clutter-crlf",
            "safety_hazards",
            "stairwell_clutter",
            "楼道堆物",
            place=Place(compound="百瑞景\r\nBcc: someone@elsewhere.test", phase="4", building="4"),
            when=at("2025-04-15 09:10"),
        )
        await report_and_escalate(
            feed,
            clutter,
            escalated(clutter, to_level="compound", target="property_management", when=at("2025-04-15 09:20")),
        )

        async def dead() -> list[dict]:
            rows = (
                await client.get(
                    f"/v1/communities/{COMMUNITY}/notifications", params={"state": "dead"}, headers=secretary
                )
            ).json()["notifications"]
            return rows

        [row] = await eventually(dead, timeout=30, what="the poison notification dead")
        assert row["attempts"] == 3 and row["last_error"] == "email: sending failed (ValueError)"
        [dead_letter] = await notify_events(feed, config, "NotificationDeadLettered")
        assert dead_letter.data.error == "email: sending failed (ValueError)" and dead_letter.data.attempt == 3
        assert len(await notify_events(feed, config, "NotificationFailed")) == 3
        assert smtp.messages == []
