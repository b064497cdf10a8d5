"""Problem statistics: a month of casework counted per category, grid, agency and month, the hotline's
three rates, on-time closure, rework, and the street's roll-up — from the issue events, as JSON and CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from services.issues.app import build_app
from services.issues.statistics import IssueStatistics
from shared.events import SHANGHAI, now
from shared.events.visits import CommunityRegistered, CommunityRegisteredData
from shared.eventstore import EventStore
from shared.projection import replay
from shared.settings import Settings
from tests.harness import eventually, running
from tests.integration.issues.conftest import COMMUNITY, Service, make_settings, policy_file

STATS = f"/v1/communities/{COMMUNITY}/statistics"
ORDERS = f"/v1/communities/{COMMUNITY}/hotline/orders"


@pytest.fixture
async def fast(settings: Settings, tmp_path: Path) -> AsyncIterator[Service]:
    """The issues service where sanitation problems run out of time within a second at every level."""
    path = policy_file(
        tmp_path,
        '[[deadline]]\ncategory = "environmental_sanitation"\n'
        'building = "1s"\ncompound = "1s"\ncommunity = "1s"\nstreet = "1s"\n\n'
        '[[deadline]]\nbuilding = "48h"\ncompound = "72h"\ncommunity = "5d"\nstreet = "10d"\n',
    )
    s = make_settings(settings, issues_escalation_file=path)
    app = build_app(s)
    async with running(app) as client:
        yield Service(client, app, s)


async def step(service: Service, issue: str, action: str, **body: Any) -> None:
    """Take a step at the issue's current version (timers and rules move it meanwhile)."""

    async def taken() -> bool:
        version = (await service.issue(issue))["issue"]["version"]
        r = await service.client.post(
            f"/v1/communities/{COMMUNITY}/issues/{issue}/{action}",
            json={"version": version, **body},
            headers=service.token("secretary"),
        )
        assert r.status_code in (200, 409), r.text
        return r.status_code == 200

    await eventually(taken, timeout=30, what=f"{action} {issue}")


async def callback(service: Service, order_no: str, satisfied: bool) -> None:
    r = await service.client.post(
        f"{ORDERS}/{order_no}/callback",
        json={"satisfied": satisfied, "satisfaction": 5 if satisfied else 2},
        headers=service.token("hotline"),
    )
    assert r.status_code == 200, r.text


async def order(service: Service, order_no: str, respond_in: timedelta) -> str:
    body = {
        "order_no": order_no,
        "request": "dogs off the lead in the square",
        "category": "conflicts_disputes",
        "subcategory": "pets",
        "place": {"grid": "phase1-west"},
        "response_deadline": (now() + respond_in).isoformat(),
        "resolution_deadline": (now() + timedelta(days=3)).isoformat(),
    }
    r = await service.client.post(ORDERS, json=body, headers=service.token("hotline"))
    assert r.status_code == 201, r.text
    return str(r.json()["issue"]["issue_id"])


async def stats(service: Service, headers: dict[str, str] | None = None, **params: Any) -> dict[str, Any]:
    r = await service.client.get(STATS, params=params, headers=headers or service.token("secretary"))
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_a_month_of_casework_is_counted_with_the_hotlines_three_rates(fast: Service, outside: EventStore) -> None:
    service = fast
    # 1. A 12345 order answered in time, solved, and the resident satisfied on the call-back.
    quick = await order(service, "ST-QUICK", timedelta(hours=2))
    await step(service, quick, "accept")
    await step(service, quick, "assign", assignee_kind="worker", assignee_id="w03")
    await step(service, quick, "resolve", resolution="talked to the owners")
    await callback(service, "ST-QUICK", satisfied=True)
    # 2. A 12345 order answered after its response deadline, solved twice: the first call-back not
    #    satisfied (reopened), the second satisfied — still within its resolution deadline.
    slow = await order(service, "ST-SLOW", -timedelta(hours=1))
    await step(service, slow, "accept")
    await step(service, slow, "assign", assignee_kind="worker", assignee_id="w03")
    await step(service, slow, "resolve", resolution="asked the owners")
    await callback(service, "ST-SLOW", satisfied=False)
    await step(service, slow, "assign", assignee_kind="worker", assignee_id="w03")
    await step(service, slow, "resolve", resolution="leads handed out")
    await callback(service, "ST-SLOW", satisfied=True)
    # 3. Noise handed to the police by name, solved, checked on site, closed.
    noise = (
        await service.report(
            category="conflicts_disputes", subcategory="noise", description="drums", place={"grid": "phase2-east"}
        )
    )["issue"]["issue_id"]
    await step(service, noise, "accept")
    await step(service, noise, "assign", assignee_kind="police", assignee_id="police-ruijing")
    await step(service, noise, "resolve", resolution="explained the rules")
    await step(service, noise, "verify", verified_by="worker", satisfied=True)
    await step(service, noise, "close")
    # 4. Rubbish that ran out of time before anyone accepted it: answered late, closed late.
    rubbish = (
        await service.report(
            category="environmental_sanitation",
            subcategory="garbage",
            description="bins overflowing",
            place={"grid": "phase2-east"},
        )
    )["issue"]["issue_id"]

    async def at_the_top() -> bool:
        issue = (await service.issue(rubbish))["issue"]
        return bool(issue["level"] == "street" and issue["overdue"])

    await eventually(at_the_top, timeout=30, what="the rubbish ran out of time up to the street")
    await step(service, rubbish, "accept")
    await step(service, rubbish, "assign", assignee_kind="worker", assignee_id="w07")
    await step(service, rubbish, "resolve", resolution="bins emptied")
    await step(service, rubbish, "verify", verified_by="resident_callback", satisfied=True)
    await step(service, rubbish, "close")
    # 5. A lift fault still waiting, and a second report of it merged into it.
    lift = (
        await service.report(
            category="public_facilities", subcategory="lift", description="lift stuck", place={"grid": "phase2-east"}
        )
    )["issue"]["issue_id"]
    again = (
        await service.report(
            category="public_facilities",
            subcategory="lift",
            description="lift stuck again",
            place={"grid": "phase2-east"},
        )
    )["issue"]["issue_id"]
    await step(service, again, "merge", duplicate_of=lift)

    async def folded() -> dict[str, Any] | None:
        body = await stats(service, by="category")
        total = body["total"]
        return body if total["reported"] == 6 and total["closed"] == 4 and total["merged"] == 1 else None

    body = await eventually(folded, timeout=30, what="the statistics have folded the month")
    month = now().astimezone(SHANGHAI).strftime("%Y-%m")
    assert (body["to"], body["by"], body["source"], body["community"]) == (month, "category", None, COMMUNITY)
    total = body["total"]
    assert {k: total[k] for k in ("reported", "merged", "received", "accepted", "responded_on_time")} == {
        "reported": 6,
        "merged": 1,
        "received": 5,  # the duplicate is not a case of its own
        "accepted": 4,  # the lift fault still waits
        "responded_on_time": 2,  # the slow order after its deadline, the rubbish after it ran out of time
    }
    assert {k: total[k] for k in ("resolved", "reworked", "reopened", "closed", "closed_on_time")} == {
        "resolved": 4,
        "reworked": 1,
        "reopened": 1,
        "closed": 4,
        "closed_on_time": 3,  # not the rubbish
    }
    # Three call-backs from the hotline (one not satisfied), one by the community itself.
    assert (total["callbacks"], total["satisfied_callbacks"], total["satisfaction"]) == (4, 3, 0.75)
    assert total["rates"] == {
        "response": 0.4,
        "resolution": 0.8,
        "satisfaction": 0.75,
        "closure": 0.8,
        "on_time_closure": 0.75,
    }
    assert 0 <= total["median_hours_to_close"] <= total["p90_hours_to_close"] < 1
    groups = {g["key"]: g for g in body["groups"]}
    assert list(groups) == [
        "public_facilities",
        "environmental_sanitation",
        "safety_hazards",
        "conflicts_disputes",
        "livelihood_services",
    ]  # every category, even with nothing reported
    assert groups["safety_hazards"]["reported"] == 0 and groups["safety_hazards"]["rates"]["response"] is None
    conflicts = groups["conflicts_disputes"]
    assert (conflicts["reported"], conflicts["closed"], conflicts["reworked"], conflicts["responded_on_time"]) == (
        3,
        3,
        1,
        2,
    )
    assert groups["public_facilities"]["merged"] == 1 and groups["public_facilities"]["received"] == 1, groups

    by_agency = {g["key"]: g["reported"] for g in (await stats(service, by="agency"))["groups"]}
    # The police by name; the rubbish climbed to the street, where the street office takes a case.
    assert by_agency == {"police-ruijing": 1, "street_office": 1, None: 4}
    by_grid = {g["key"]: g["reported"] for g in (await stats(service, by="grid"))["groups"]}
    assert by_grid == {"phase1-west": 2, "phase2-east": 4}
    by_month = await stats(service, **{"from": month, "to": month})
    assert [g["key"] for g in by_month["groups"]] == [month] and by_month["groups"][0]["reported"] == 6
    year_ago = await stats(service)  # the last twelve months, every one listed
    assert len(year_ago["groups"]) == 12 and year_ago["groups"][-1]["key"] == month

    # The 12345 hotline sees the figures of its own work orders only: the three rates of its orders.
    hotline = await stats(service, service.token("hotline"), by="category")
    assert hotline["source"] == "hotline" and hotline["total"]["reported"] == 2
    assert hotline["total"]["rates"]["response"] == 0.5 and hotline["total"]["rates"]["satisfaction"] == 0.6667
    refused = await service.client.get(STATS, params={"source": "grid_worker"}, headers=service.token("hotline"))
    assert refused.status_code == 403 and refused.json()["error"]["field"] == "source"

    # CSV: one line per group and a total line, rates as fractions.
    r = await service.client.get(STATS, params={"by": "grid", "format": "csv"}, headers=service.token("secretary"))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    lines = list(csv.DictReader(io.StringIO(r.text)))
    assert [line["grid"] for line in lines] == ["phase1-west", "phase2-east", "total"]
    assert lines[-1]["reported"] == "6" and lines[-1]["response_rate"] == "0.4"

    # Bad ranges name the field.
    for params, field in (({"from": "2026-13"}, "from"), ({"from": "2026-05", "to": "2026-01"}, "from")):
        bad = await service.client.get(STATS, params=params, headers=service.token("secretary"))
        assert bad.status_code == 422 and field in bad.text, bad.text
    assert (await service.client.get(STATS, headers=service.token("ops"))).status_code == 403
    assert (await service.client.get(STATS, headers=service.token())).status_code == 403  # a grid worker

    # The street's roll-up: each community of the street, even one with no issue yet.
    for community, name in ((COMMUNITY, "百瑞景社区"), ("quiet", "Quiet")):
        registered = CommunityRegistered.new(
            community=community,
            aggregate_id=community,
            actor="ops",
            data=CommunityRegisteredData(community_id=community, name=name, street="zhongnanlu"),
        )
        await outside.append([registered], 0)
    admin = service.token("street_admin", street="zhongnanlu")

    async def street() -> dict[str, Any] | None:
        r = await service.client.get("/v1/streets/zhongnanlu/statistics", headers=admin)
        assert r.status_code == 200, r.text
        found: dict[str, Any] = r.json()
        return found if len(found["communities"]) == 2 else None

    roll_up = await eventually(street, timeout=30, what="the street knows its communities")
    assert [(g["key"], g["reported"]) for g in roll_up["groups"]] == [(COMMUNITY, 6), ("quiet", 0)]
    assert roll_up["total"]["rates"] == total["rates"]
    r = await service.client.get("/v1/streets/zhongnanlu/statistics", headers=service.token("street_admin", street="x"))
    assert r.status_code == 403
    # …and the community's statistics, to the street admin of its street.
    assert (await service.client.get(STATS, headers=admin)).status_code == 200

    # Rebuilt by replay from the first event, the figures are the same.
    runtime = service.app.state.runtime
    before = await stats(service, by="grid")
    await replay(IssueStatistics(), nc=outside.nc, pool=runtime.pool, settings=service.settings)
    assert await stats(service, by="grid") == before
