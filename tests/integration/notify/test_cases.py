"""The four Bairuijing cases, end to end: escalations in the stream reach the right people.

Real NATS and PostgreSQL, the real notify app, a real HTTP receiver (webhooks, WeCom robot, SMS
gateway) and a real SMTP server on 127.0.0.1.
"""

from __future__ import annotations

import httpx

from services.notify.app import build_app
from services.notify.projections import NotifyRouting
from services.notify.receiver import LocalReceiver
from services.notify.settings import NotifySettings
from shared.events import Place
from shared.events.issues import IssueOverdue, IssueOverdueData
from shared.eventstore import EventStore
from shared.projection import replay
from tests.harness import auth, eventually, running

from .scenario import (
    COMMUNITY,
    DUTY_PHONE,
    WEBHOOK_SECRETS,
    WECOM_KEYS,
    Inbox,
    at,
    escalated,
    notify_events,
    register_directory,
    report_and_escalate,
    reported,
)


async def test_the_four_cases_of_bairuijing_reach_the_right_recipients(
    notify_settings: NotifySettings, receiver: LocalReceiver, smtp: Inbox, feed: EventStore
) -> None:
    app = build_app(notify_settings)
    async with running(app) as client:
        await register_directory(client, notify_settings, receiver)

        # 1. Night-time noise, phase 2 east grid: a resident shouts into a microphone at 23:40.
        noise = reported(
            "noise-0414",
            "conflicts_disputes",
            "noise",
            "2期东网格：住户深夜对着麦克风喊话直播，楼上楼下邻居投诉",
            severity="high",
            place=Place(compound="百瑞景", phase="2", building="7", grid="phase2-east"),
            when=at("2025-04-14 23:40"),
        )
        await report_and_escalate(
            feed, noise, escalated(noise, to_level="community", target="police", when=at("2025-04-14 23:45"))
        )
        # 2. Stairwell clutter, phase 4 building 4: it keeps coming back.
        clutter = reported(
            "clutter-4-4",
            "safety_hazards",
            "stairwell_clutter",
            "4期4栋楼道堆放杂物，物业多次清理后反复出现，存在消防隐患",
            place=Place(compound="百瑞景", phase="4", building="4"),
            when=at("2025-04-15 09:10"),
        )
        await report_and_escalate(
            feed,
            clutter,
            escalated(clutter, to_level="compound", target="property_management", when=at("2025-04-15 09:20")),
        )
        # 3. Pet conflicts: dogs off the lead in the compound.
        pets = reported(
            "dogs-0416",
            "conflicts_disputes",
            "pets",
            "小区遛狗不拴绳，居民与宠物主人发生争执",
            place=Place(compound="百瑞景", phase="3"),
            when=at("2025-04-16 18:30"),
        )
        await report_and_escalate(
            feed,
            pets,
            escalated(pets, to_level="community", target=None, reason="manual", when=at("2025-04-16 19:00")),
        )
        # 4. Public-area planning (March 2025): the compound's public-area rules go to the street.
        planning = reported(
            "public-area-0310",
            "public_facilities",
            "public_area_planning",
            "Questionnaire on public-area rules tried in one building; the council asks the street to plan",
            place=Place(compound="百瑞景"),
            when=at("2025-03-10 10:00"),
        )
        await report_and_escalate(
            feed,
            planning,
            escalated(
                planning, to_level="street", target="street_office", reason="manual", when=at("2025-03-12 10:00")
            ),
        )

        async def all_arrived() -> bool:
            return (
                len(receiver.on("/webhook/police-duty")) == 1
                and len(receiver.on("/sms")) == 1
                and len(receiver.on("/wecom/send")) == 4
                and len(smtp.to("wuye@bairuijing.test")) == 2
                and len(smtp.to("shuji@bairuijing.test")) == 2
                and len(smtp.to("planning@zhongnanlu.test")) == 1
            )

        await eventually(all_arrived, timeout=30, what="every case at its recipients")

        # Case 1 went to the police station's duty line — signed, verified — and not the day officer.
        duty = receiver.on("/webhook/police-duty")[0].json()
        assert duty["facts"]["issue_id"] == "noise-0414" and duty["urgent"] is True
        assert "矛盾纠纷" in duty["title"] and duty["ack_url"].startswith("http://notify.bairuijing.test/v1/ack/")
        assert receiver.on("/webhook/police-officer") == []
        sms = receiver.on("/sms")[0].json()
        assert sms["to"] == DUTY_PHONE and "2期东网格" in sms["text"] and "/v1/ack/" in sms["text"]
        assert receiver.refused == []  # every webhook signature verified
        # Someone who captured the police webhook sends it again: the receiver refuses the replay.
        captured = receiver.on("/webhook/police-duty")[0]
        async with httpx.AsyncClient() as outsider:
            replayed = await outsider.post(
                f"{receiver.url}/webhook/police-duty", content=captured.body, headers=captured.headers
            )
        assert replayed.status_code == 401 and receiver.refused == [
            ("/webhook/police-duty", "replayed request: nonce already seen")
        ]

        # Case 2 and 3 reached property management's WeCom group as markdown, in Chinese.
        robot = [r for r in receiver.on("/wecom/send") if r.query["key"] == WECOM_KEYS["property"]]
        contents = sorted(r.json()["markdown"]["content"] for r in robot)
        assert len(robot) == 2 and all(r.json()["msgtype"] == "markdown" for r in robot)
        assert any("4期4栋" in c and "安全隐患" in c for c in contents)
        assert any("小区遛狗不拴绳" in c for c in contents)
        property_mail = {m["Subject"] for m in smtp.to("wuye@bairuijing.test")}
        assert any("安全隐患·stairwell_clutter" in s and "4期4栋" in s for s in property_mail)

        # Case 3 and 4 reached the secretary; case 4 the street's community-building office, in English.
        street = smtp.to("planning@zhongnanlu.test")[0]
        assert street["Subject"].startswith("[Escalation] public facilities / public_area_planning")
        assert "Questionnaire on public-area rules" in street.get_content()
        secretary_subjects = " ".join(m["Subject"] for m in smtp.to("shuji@bairuijing.test"))
        assert "矛盾纠纷" in secretary_subjects and "公共设施" in secretary_subjects

        # Each (escalation, recipient, channel) is one notification, delivered once, told in events.
        delivered = await eventually(
            lambda: _delivered(feed, notify_settings, 11), timeout=30, what="NotificationDelivered events"
        )
        assert len({e.aggregate_id for e in delivered}) == 11

        async def all_delivered() -> bool:
            listing = await client.get(
                f"/v1/communities/{COMMUNITY}/notifications",
                headers=auth(notify_settings, "secretary", community=COMMUNITY),
            )
            rows = listing.json()["notifications"]
            return len(rows) == 11 and {n["state"] for n in rows} == {"delivered"}

        await eventually(all_delivered, timeout=30, what="every outbox row delivered")

        # Secrets never appear in events or in what the API answers.
        raw = b"".join(s.data for s in await feed.read(f"{notify_settings.namespace}.>"))
        answer = (
            await client.get(
                f"/v1/communities/{COMMUNITY}/recipients",
                headers=auth(notify_settings, "secretary", community=COMMUNITY),
            )
        ).text
        for secret in [*WEBHOOK_SECRETS.values(), *WECOM_KEYS.values()]:
            assert secret.encode() not in raw and secret not in answer


async def _delivered(store, settings, count):  # type: ignore[no-untyped-def]
    events = await notify_events(store, settings, "NotificationDelivered")
    return events if len(events) == count else None


async def test_an_overdue_issue_reminds_the_secretary_and_a_replay_sends_nothing_again(
    notify_settings: NotifySettings, receiver: LocalReceiver, smtp: Inbox, feed: EventStore
) -> None:
    app = build_app(notify_settings)
    async with running(app) as client:
        await register_directory(client, notify_settings, receiver, only={"secretary"})
        issue = reported(
            "lamp-0420",
            "public_facilities",
            "street_lamp",
            "3期路灯坏了两周",
            place=Place(compound="百瑞景", phase="3"),
            when=at("2025-04-20 19:00"),
        )
        overdue = IssueOverdue.new(
            community=COMMUNITY,
            aggregate_id="lamp-0420",
            actor="issues",
            occurred_at=at("2025-04-23 19:00"),
            idempotency_key="overdue-community",
            data=IssueOverdueData(
                issue_id="lamp-0420", level="community", deadline=at("2025-04-23 19:00"), state="assigned"
            ),
        )
        await report_and_escalate(feed, issue, overdue)
        await eventually(lambda: _one(smtp.to("shuji@bairuijing.test")), timeout=30, what="the reminder")
        (mail,) = smtp.to("shuji@bairuijing.test")
        assert mail["Subject"].startswith("【超时提醒】公共设施 百瑞景3期") and "3期路灯坏了两周" in mail.get_content()

        # Operations: metrics with bounded labels, AsyncAPI naming what notify publishes.
        metrics = (await client.get("/metrics")).text
        assert 'gridwork_notifications_total{channel="email",outcome="delivered"}' in metrics
        asyncapi = (await client.get("/asyncapi")).json()
        assert "NotificationUnacknowledged" in str(asyncapi)

        # A rebuild of the routing projection must not route old facts again, not even to a
        # recipient added since.
        await register_directory(client, notify_settings, receiver, only={"property"})
        runtime = app.state.runtime
        async with runtime.pool.acquire() as conn:
            before = await conn.fetchval("SELECT count(*) FROM notify_deliveries")
        await replay(NotifyRouting(), nc=feed.nc, pool=runtime.pool, settings=notify_settings)
        async with runtime.pool.acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM notify_deliveries") == before
            assert await conn.fetchval("SELECT count(*) FROM proj_notify_routing.issues") == 1


async def _one(items: list) -> list | None:
    return items if len(items) == 1 else None
