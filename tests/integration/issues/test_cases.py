"""The four real cases of the Bairuijing community (DOMAIN.md), end to end on NATS and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from services.issues.app import build_app
from shared.events import SHANGHAI, now
from shared.events.visits import BuildingCouncilHeld, BuildingCouncilHeldData, ProblemNote
from shared.eventstore import EventStore
from shared.settings import Settings
from tests.harness import eventually, running
from tests.integration.issues.conftest import COMMUNITY, Service, make_settings, policy_file


@pytest.fixture
async def service(settings: Settings, tmp_path: Path) -> AsyncIterator[Service]:
    """The service with the shipped rules but no deadline clocks (the stories do not wait for days)."""
    s = make_settings(settings, issues_escalation_file=policy_file(tmp_path, ""))
    app = build_app(s)
    async with running(app) as client:
        yield Service(client, app, s)


async def escalated(service: Service, issue: str) -> list:
    async def found() -> list:
        return [e.data for e in await service.events(issue) if e.type == "IssueEscalated"]

    return await eventually(found, timeout=30, what=f"{issue} escalated")


async def test_night_time_noise_reaches_the_police_and_is_resolved(service: Service) -> None:
    last_night = now().astimezone(SHANGHAI).replace(hour=23, minute=30, second=0, microsecond=0)
    if last_night > now():
        last_night -= timedelta(days=1)
    worker = service.token("grid_worker", worker_id="w05", grid="phase2-east")
    out = await service.report(
        headers=worker,
        category="conflicts_disputes",
        subcategory="noise",
        severity="high",
        occurred_at=last_night.isoformat(),
        place={"compound": "bairuijing", "phase": "2", "building": "6"},
        description="a resident shouts into a microphone late at night for work; neighbours above and below complain",
    )
    issue = out["issue"]["issue_id"]
    [police] = await escalated(service, issue)
    assert (police.to_level, police.target, police.reason) == ("community", "police", "rule")
    assert (police.category, police.subcategory, police.severity) == ("conflicts_disputes", "noise", "high")

    v = (await service.issue(issue))["issue"]["version"]
    v = (await service.act(issue, "accept", v, headers=worker))["version"]
    v = (
        await service.act(
            issue,
            "assign",
            v,
            headers=worker,
            assignee_kind="police",
            assignee_id="police-zhongnanlu",
            note="visit together with the grid worker",
        )
    )["version"]
    v = (
        await service.act(
            issue,
            "resolve",
            v,
            headers=service.token("agency", agency="police-zhongnanlu"),
            resolution="explained the Noise Pollution Prevention and Control Law; "
            "the resident agreed to install soundproofing",
        )
    )["version"]
    v = (
        await service.act(
            issue, "verify", v, headers=worker, satisfied=True, satisfaction=5, note="neighbours report quiet nights"
        )
    )["version"]
    closed = await service.act(issue, "close", v, headers=worker)
    assert closed["issue"]["status"] == "closed" and closed["issue"]["target"] == "police"
    assert [a["kind"] for a in closed["issue"]["assignees"]] == ["police"]


async def test_stairwell_clutter_comes_back_and_is_cleared_with_the_building_leader_and_volunteers(
    service: Service,
) -> None:
    worker = service.token("grid_worker", worker_id="w12", grid="phase4-north")
    out = await service.report(
        headers=worker,
        category="safety_hazards",
        subcategory="stairwell_clutter",
        place={"compound": "bairuijing", "phase": "4", "building": "4"},
        description="boxes, bikes and old furniture in the stairwell of phase 4 building 4: a fire risk",
        photos=["https://img.example.cn/p4b4-stairs.jpg"],
    )
    issue = out["issue"]["issue_id"]
    [to_pm] = await escalated(service, issue)
    assert (to_pm.to_level, to_pm.target, to_pm.rule) == (
        "compound",
        "property_management",
        "safety_hazard_to_property_management",
    )
    v = (await service.issue(issue))["issue"]["version"]
    v = (await service.act(issue, "accept", v, headers=worker))["version"]
    for round_ in range(2):  # property management cleaned it many times, and it came back
        v = (
            await service.act(
                issue, "assign", v, headers=worker, assignee_kind="property_management", assignee_id="pm-ruijing"
            )
        )["version"]
        v = (
            await service.act(
                issue,
                "resolve",
                v,
                headers=service.token("agency", agency="pm-ruijing"),
                resolution=f"stairwell cleaned (round {round_ + 1})",
            )
        )["version"]
        back = await service.act(
            issue, "verify", v, headers=worker, satisfied=False, satisfaction=1, note="the clutter is back a week later"
        )
        assert back["issue"]["status"] == "reopened"
        v = back["version"]
    v = (
        await service.act(
            issue,
            "assign",
            v,
            headers=worker,
            assignee_kind="building_leader",
            assignee_id="uncle-zhang",
            note="rallied party members in the building group chat",
        )
    )["version"]
    v = (
        await service.act(
            issue,
            "assign",
            v,
            headers=worker,
            assignee_kind="volunteer_team",
            assignee_id="p4b4-patrol",
            note="residents' patrol reports in real time",
        )
    )["version"]
    v = (
        await service.act(
            issue,
            "resolve",
            v,
            headers=worker,
            resolution="knocked on every door to find the owners; cleared with the building leader, "
            "party members and volunteers; now cleared dynamically",
        )
    )["version"]
    v = (await service.act(issue, "verify", v, headers=worker, satisfied=True, satisfaction=5))["version"]
    closed = await service.act(issue, "close", v, headers=worker)
    state = closed["issue"]
    assert (state["status"], state["reopened"], state["resolutions"]) == ("closed", 2, 3)
    assert [a["kind"] for a in state["assignees"]] == [
        "property_management",
        "property_management",
        "building_leader",
        "volunteer_team",
    ]


async def test_pet_conflicts_are_merged_handled_by_volunteers_and_closed_on_the_call_back(service: Service) -> None:
    phase3 = {"compound": "bairuijing", "phase": "3", "building": "2"}
    first = await service.report(
        category="conflicts_disputes",
        subcategory="pets",
        place=phase3,
        description="dogs walked off the lead at 7 am, children frightened",
    )
    issue = first["issue"]["issue_id"]

    async def on_board() -> dict:
        r = await service.client.get(f"/v1/communities/{COMMUNITY}/problems/open", headers=service.token())
        return r.json() if r.json()["total"] == 1 else {}

    await eventually(on_board, timeout=30, what="first complaint on the board")
    second = await service.report(
        category="conflicts_disputes",
        subcategory="pets",
        place=phase3,
        description="dog droppings at the door of building 2",
    )
    assert [d["issue_id"] for d in second["possible_duplicates"]] == [issue]
    await service.act(second["issue"]["issue_id"], "merge", 1, duplicate_of=issue)
    call = await service.client.post(
        f"/v1/communities/{COMMUNITY}/hotline/orders",
        headers=service.token("hotline"),
        json={
            "order_no": "GD20250301042",
            "request": "dogs barking and off the lead",
            "category": "conflicts_disputes",
            "subcategory": "pets",
            "place": phase3,
            "response_deadline": (now() + timedelta(hours=4)).isoformat(),
            "resolution_deadline": (now() + timedelta(days=5)).isoformat(),
        },
    )
    assert call.status_code == 201
    order_issue = call.json()["issue_id"]

    # After the role-play training: staggered dog-walking times and volunteer service for points.
    for target, version in ((issue, 1), (order_issue, 2)):
        v = (await service.act(target, "accept", version))["version"]
        v = (
            await service.act(
                target,
                "assign",
                v,
                assignee_kind="volunteer_team",
                assignee_id="dog-walking-team",
                note="staggered dog-walking times; volunteers earn points",
            )
        )["version"]
        await service.act(target, "resolve", v, resolution="staggered dog-walking times in force")
    closed_by_call = await service.client.post(
        f"/v1/communities/{COMMUNITY}/hotline/orders/GD20250301042/callback",
        headers=service.token("hotline"),
        json={"satisfied": True, "satisfaction": 5},
    )
    assert closed_by_call.json()["issue"]["status"] == "closed"
    v = (await service.issue(issue))["issue"]["version"]
    v = (await service.act(issue, "verify", v, verified_by="resident_callback", satisfied=True, satisfaction=4))[
        "version"
    ]
    await service.act(issue, "close", v)

    async def complaints_gone() -> dict:
        r = await service.client.get(f"/v1/communities/{COMMUNITY}/problems/open", headers=service.token())
        return r.json() if r.json()["total"] == 0 else {}

    assert (await eventually(complaints_gone, timeout=30, what="no open pet complaints"))["by_category"] == {}


async def test_public_area_planning_raised_at_a_building_council_is_carried_through(
    service: Service, outside: EventStore
) -> None:
    march = now().replace(microsecond=0) - timedelta(hours=3)
    council = BuildingCouncilHeld.new(
        community=COMMUNITY,
        aggregate_id="c-p1-1-0315",
        actor="w02",
        occurred_at=march,
        data=BuildingCouncilHeldData(
            council_id="c-p1-1-0315",
            worker_id="w02",
            building_id="b-p1-1",
            party_members=["pm-chen", "pm-liu"],
            resident_backbones=["rep-1", "rep-2", "rep-3"],
            attendees=12,
            decisions=["try the questionnaire's public-area rules in building 1 first"],
            problems=[
                ProblemNote(
                    category="public_facilities",
                    subcategory="public_area_planning",
                    description="rules for the compound's public areas (questionnaire results)",
                )
            ],
        ),
    )
    await outside.append([council], 0)
    issue = "c-p1-1-0315-p0"

    async def filed() -> list:
        return await service.events(issue)

    [reported] = await eventually(filed, timeout=30, what="council problem filed")
    assert (reported.data.source, reported.data.caused_by_visit, reported.actor) == ("council", "c-p1-1-0315", "w02")
    worker = service.token("grid_worker", worker_id="w02")
    v = (await service.act(issue, "accept", 1, headers=worker))["version"]
    v = (
        await service.act(
            issue,
            "assign",
            v,
            headers=worker,
            assignee_kind="building_leader",
            assignee_id="b-p1-1-leader",
            note="trial in building 1",
        )
    )["version"]
    v = (
        await service.act(
            issue,
            "resolve",
            v,
            headers=worker,
            resolution="rules tried in building 1, then adopted by the building council",
        )
    )["version"]
    v = (await service.act(issue, "verify", v, headers=worker, satisfied=True, satisfaction=5))["version"]
    closed = await service.act(issue, "close", v, headers=worker)
    assert closed["issue"]["status"] == "closed" and closed["issue"]["source"] == "council"
