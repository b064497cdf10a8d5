"""The escalation ladder on real NATS and PostgreSQL: by hand, by rule, when overdue, when unacknowledged."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from services.issues.app import build_app
from services.issues.projections import ESCALATION
from shared.events import SHANGHAI, now
from shared.events.notify import (
    NotificationAcknowledged,
    NotificationData,
    NotificationUnacknowledged,
    NotificationUnacknowledgedData,
)
from shared.events.visits import CommunityRegistered, CommunityRegisteredData
from shared.eventstore import EventStore
from shared.settings import Settings
from tests.harness import eventually, running
from tests.integration.issues.conftest import COMMUNITY, Service, make_settings, policy_file


def tonight(hour: int = 23, minute: int = 30) -> datetime:
    return now().astimezone(SHANGHAI).replace(hour=hour, minute=minute, second=0, microsecond=0)


def latest_past(hour: int, minute: int = 30) -> datetime:
    """The latest hour:minute (Asia/Shanghai) already past: a report may not come from the future."""
    at = tonight(hour, minute)
    return at if at <= now() else at - timedelta(days=1)


async def escalations(service: Service, issue_id: str) -> list[tuple[str, str, str, str | None]]:
    return [
        (e.data.reason, e.data.from_level, e.data.to_level, e.data.target)
        for e in await service.events(issue_id)
        if e.type == "IssueEscalated"
    ]


async def test_manual_escalation_needs_a_reason_and_climbs_to_the_agency(service: Service, outside: EventStore) -> None:
    out = await service.report(category="public_facilities", subcategory="lift", description="lift stuck for 3 days")
    issue = out["issue"]["issue_id"]
    no_reason = await service.act(issue, "escalate", 1, expect=422)
    assert no_reason["error"]["field"] == "reason"
    up = await service.act(issue, "escalate", 1, reason="the lift company does not answer the building leader")
    assert (up["issue"]["level"], up["issue"]["target"]) == ("compound", None)
    agency = await service.act(issue, "escalate", 2, reason="safety risk for the elderly", target="urban_management")
    assert (agency["issue"]["level"], agency["issue"]["target"]) == ("street", "urban_management")
    top = await service.act(issue, "escalate", 3, expect=409, reason="again")
    assert top["error"]["code"] == "illegal_transition" and top["error"]["level"] == "street"
    assert await escalations(service, issue) == [
        ("manual", "building", "compound", None),
        ("manual", "compound", "street", "urban_management"),
    ]
    [event] = [e for e in await service.events(issue) if e.type == "IssueEscalated"][:1]
    assert (event.data.note, event.data.category, event.data.subcategory, event.data.severity) == (
        "the lift company does not answer the building leader",
        "public_facilities",
        "lift",
        "medium",
    )

    # A street admin may escalate in the communities of its street (known from CommunityRegistered).
    await outside.append(
        [
            CommunityRegistered.new(
                community=COMMUNITY,
                aggregate_id=COMMUNITY,
                actor="ops",
                data=CommunityRegisteredData(community_id=COMMUNITY, name="百瑞景社区", street="zhongnanlu"),
            )
        ],
        0,
    )
    other = await service.report(category="public_facilities", subcategory="facilities", description="broken gate")
    street_admin = service.token("street_admin", street="zhongnanlu")
    stranger = service.token("street_admin", street="shuiguohu")

    async def street_known() -> bool:
        r = await service.client.post(
            f"/v1/communities/{COMMUNITY}/issues/{other['issue']['issue_id']}/escalate",
            json={"version": 1, "reason": "street inspection", "target": "street_office"},
            headers=street_admin,
        )
        return r.status_code == 200

    await eventually(street_known, timeout=30, what="street admin allowed once the community's street is known")
    r = await service.client.post(
        f"/v1/communities/{COMMUNITY}/issues/{other['issue']['issue_id']}/escalate",
        json={"version": 2, "reason": "x", "target": "hotline"},
        headers=stranger,
    )
    assert r.status_code == 403


async def test_rules_escalate_every_report_whatever_its_source(settings: Settings, tmp_path: Path) -> None:
    # Reports found at 23:30 and 14:30, up to a day ago: deadlines long enough that only the rules act.
    calm = policy_file(
        tmp_path, '[[deadline]]\nbuilding = "30d"\ncompound = "30d"\ncommunity = "30d"\nstreet = "30d"\n'
    )
    s = make_settings(settings, issues_escalation_file=calm)
    app = build_app(s)
    async with running(app) as client:
        await _rules_escalate_every_report(Service(client, app, s))


async def _rules_escalate_every_report(service: Service) -> None:
    noise = await service.report(
        category="conflicts_disputes",
        subcategory="noise",
        severity="high",
        occurred_at=latest_past(23).isoformat(),
        description="shouting into a microphone at night",
    )
    daytime = await service.report(
        category="conflicts_disputes",
        subcategory="noise",
        severity="high",
        occurred_at=latest_past(14).isoformat(),
        description="music at 2 pm",
    )
    order = await service.client.post(
        f"/v1/communities/{COMMUNITY}/hotline/orders",
        headers=service.token("hotline"),
        json={
            "order_no": "GD20250414007",
            "request": "fire door blocked by bikes",
            "category": "safety_hazards",
            "subcategory": "fire_safety",
            "response_deadline": (now() + timedelta(hours=2)).isoformat(),
            "resolution_deadline": (now() + timedelta(days=3)).isoformat(),
        },
    )
    assert order.status_code == 201, order.text
    posted = await service.client.post(
        "/open311/v2/requests.json",
        data={
            "api_key": "app-key-1",
            "service_code": "safety_hazards.stairwell_clutter",
            "lat": "30.52",
            "long": "114.33",
            "description": "bikes and boxes in the stairwell",
        },
    )
    assert posted.status_code == 201, posted.text
    open311_id = posted.json()[0]["service_request_id"]

    async def all_escalated() -> bool:
        return all(
            [await escalations(service, i) for i in (noise["issue"]["issue_id"], "hl-GD20250414007", open311_id)]
        )

    await eventually(all_escalated, timeout=30, what="rule escalations")
    assert await escalations(service, noise["issue"]["issue_id"]) == [("rule", "building", "community", "police")]
    assert await escalations(service, "hl-GD20250414007") == [("rule", "building", "compound", "property_management")]
    assert await escalations(service, open311_id) == [("rule", "building", "compound", "property_management")]
    # Events are folded in stream order: once the later reports are handled, the daytime one was too.
    assert await escalations(service, daytime["issue"]["issue_id"]) == []
    [rule] = [e for e in await service.events(noise["issue"]["issue_id"]) if e.type == "IssueEscalated"]
    assert rule.data.rule == "night_conflict_to_police" and rule.actor == "issues-rules"


async def test_an_issue_waiting_too_long_climbs_level_by_level(settings: Settings, tmp_path: Path) -> None:
    fast = policy_file(
        tmp_path,
        '[[deadline]]\ncategory = "environmental_sanitation"\n'
        'building = "1s"\ncompound = "1s"\ncommunity = "1s"\nstreet = "1s"\n\n'
        '[[deadline]]\nbuilding = "48h"\ncompound = "72h"\ncommunity = "5d"\n',
    )
    s = make_settings(settings, issues_escalation_file=fast)
    app = build_app(s)
    async with running(app) as client:
        service = Service(client, app, s)
        waiting = (
            await service.report(
                category="environmental_sanitation",
                subcategory="garbage",
                description="garbage not collected for a week",
            )
        )["issue"]["issue_id"]
        handled = (
            await service.report(
                category="environmental_sanitation", subcategory="sanitation", description="dirty corridor"
            )
        )["issue"]["issue_id"]
        v = (await service.act(handled, "accept", 1))["version"]
        v = (await service.act(handled, "assign", v, assignee_kind="property_management", assignee_id="pm"))["version"]
        await service.act(handled, "resolve", v, resolution="cleaned")

        async def at_the_top() -> bool:
            return (await service.types(waiting)).count("IssueOverdue") == 4

        await eventually(at_the_top, timeout=40, what="four overdue marks")
        assert await escalations(service, waiting) == [
            ("overdue", "building", "compound", None),
            ("overdue", "compound", "community", None),
            ("overdue", "community", "street", "street_office"),
        ]
        overdue = [e for e in await service.events(waiting) if e.type == "IssueOverdue"]
        assert [e.data.level for e in overdue] == ["building", "compound", "community", "street"]
        assert all(e.occurred_at == e.data.deadline for e in overdue)  # it happened at the deadline

        async def timers(issue: str) -> list[str]:
            async with app.state.runtime.pool.acquire() as conn:
                rows = await conn.fetch(
                    f"SELECT state FROM {ESCALATION}.timers WHERE issue_id = $1 ORDER BY due_at", issue
                )
            return [r["state"] for r in rows]

        assert await timers(waiting) == ["fired"] * 4
        assert "IssueOverdue" not in await service.types(handled)  # resolved in time: its clock stopped
        assert "pending" not in await timers(handled)
        board = await service.issue(waiting)
        assert board["issue"]["overdue"] and board["issue"]["level"] == "street"


async def test_deadline_timers_survive_a_restart_and_fire_once(settings: Settings, tmp_path: Path) -> None:
    path = policy_file(tmp_path, '[[deadline]]\nbuilding = "3s"\ncompound = "1h"\ncommunity = "1h"\n')
    s = make_settings(settings, issues_escalation_file=path)

    async def timer_rows(app: object) -> list[dict]:
        async with app.state.runtime.pool.acquire() as conn:  # type: ignore[attr-defined]
            rows = await conn.fetch(
                f"SELECT timer_key, level, state, attempts FROM {ESCALATION}.timers ORDER BY due_at"
            )
        return [dict(r) for r in rows]

    # The first run polls rarely, so however slow this machine is, the deadline passes while it is down.
    first = build_app(s.model_copy(update={"issues_timer_poll_seconds": 60}))
    async with running(first) as client:
        service = Service(client, first, s)
        issue = (
            await service.report(
                category="livelihood_services", subcategory="elderly_care", description="Grandpa Zhou needs a walker"
            )
        )["issue"]["issue_id"]
        scheduled = await eventually(lambda: timer_rows(first), timeout=30, what="timer scheduled")
    # The service is down; the deadline passes meanwhile.
    assert [(r["level"], r["state"]) for r in scheduled] == [("building", "pending")]
    key = scheduled[0]["timer_key"]

    second = build_app(s)
    async with running(second) as client:
        service = Service(client, second, s)
        assert "IssueOverdue" not in await service.types(issue)

        async def fired() -> bool:
            rows = await timer_rows(second)
            # The compound clock starts once the escalation is folded, after the overdue mark.
            return [(r["level"], r["state"]) for r in rows] == [("building", "fired"), ("compound", "pending")]

        await eventually(fired, timeout=40, what="the timer fired after the restart")
        # A crash between the append and the commit leaves the row pending: it fires again.
        async with second.state.runtime.pool.acquire() as conn:
            await conn.execute(f"UPDATE {ESCALATION}.timers SET state = 'pending' WHERE timer_key = $1", key)

        async def fired_twice() -> bool:
            return any(
                r["timer_key"] == key and r["state"] != "pending" and r["attempts"] >= 2
                for r in await timer_rows(second)
            )

        await eventually(fired_twice, timeout=30, what="the timer fired again")
        events = await service.events(issue)
        assert [e.data.timer for e in events if e.type == "IssueOverdue"] == [key]
        assert [(e.data.reason, e.data.to_level) for e in events if e.type == "IssueEscalated"] == [
            ("overdue", "compound")
        ]


async def test_an_unacknowledged_escalation_climbs_once_per_notification(service: Service, outside: EventStore) -> None:
    issue = (
        await service.report(
            category="conflicts_disputes",
            subcategory="neighbour_dispute",
            description="water leaking into the flat below",
        )
    )["issue"]["issue_id"]

    def unacked(notification: str, subject: str = issue) -> NotificationUnacknowledged:
        return NotificationUnacknowledged.new(
            community=COMMUNITY,
            aggregate_id=notification,
            actor="notify",
            data=NotificationUnacknowledgedData(
                notification_id=notification,
                recipient="pm-ruijing",
                channel="wecom",
                subject_ref=subject,
                waited_seconds=1800,
            ),
        )

    store = outside  # notify's events
    await store.append([unacked("n1")], 0)
    await store.append([unacked("n1")], 1)  # notify said it twice about the same notification
    await store.append(
        [
            NotificationAcknowledged.new(
                community=COMMUNITY,
                aggregate_id="n2",
                actor="pm-ruijing",
                data=NotificationData(notification_id="n2", recipient="pm-ruijing", channel="wecom", subject_ref=issue),
            )
        ],
        0,
    )
    await store.append([unacked("n2")], 1)  # acknowledged first: no climb
    await store.append([unacked("d1", subject="digest-2025-04-14")], 0)  # not an issue: ignored
    await store.append([unacked("d2", subject="digest 2025.04.14")], 0)  # not even an id
    await store.append([unacked("n3")], 0)

    async def two_climbs() -> bool:
        return len(await escalations(service, issue)) >= 2

    await eventually(two_climbs, timeout=30, what="unacknowledged escalations")
    climbs = [e for e in await service.events(issue) if e.type == "IssueEscalated"]
    assert [(e.data.reason, e.data.from_level, e.data.to_level, e.data.notification_id) for e in climbs] == [
        ("unacknowledged", "building", "compound", "n1"),
        ("unacknowledged", "compound", "community", "n3"),
    ]
