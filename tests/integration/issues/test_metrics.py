"""What the operations dashboards and alerts read from the issues service's /metrics.

Open and overdue issues by category and level, escalations by the agency they went to, and the
12345 feedback still owed — on real NATS and PostgreSQL, read the way Prometheus reads them.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from services.cli.embedded import free_port
from services.issues.app import build_app
from services.issues.reactions import reports_board
from shared.settings import Settings
from tests.harness import eventually, running
from tests.integration.issues.conftest import COMMUNITY, Service, make_settings, policy_file
from tests.integration.issues.test_hotline import ORDERS, HotlineReceiver, work_order

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

# A critical public facility goes straight to the street (urban management) by the shipped rules;
# its clock there runs out in seconds, and at the top of the ladder the overdue mark stays.
FAST_STREET = (
    '[[deadline]]\ncategory = "public_facilities"\nseverities = ["critical"]\n'
    'building = "1h"\ncompound = "1h"\ncommunity = "1h"\nstreet = "2s"\n\n'
    '[[deadline]]\nbuilding = "48h"\ncompound = "72h"\ncommunity = "5d"\nstreet = "10d"\n'
)


async def scrape(service: Service) -> Samples:
    """Every sample of GET /metrics, keyed by name and labels."""
    r = await service.client.get("/metrics")
    assert r.status_code == 200
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def sample(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def board(samples: Samples, name: str) -> dict[tuple[str, str], float]:
    """A board gauge of Bairuijing by (category, level)."""
    out = {}
    for (metric, labels), value in samples.items():
        d = dict(labels)
        if metric == name and d.get("community") == COMMUNITY:
            out[(d["category"], d["level"])] = value
    return out


def nonzero(gauge: dict[tuple[str, str], float]) -> dict[tuple[str, str], float]:
    """The label sets with a value (the ones seen earlier stay at 0)."""
    return {k: v for k, v in gauge.items() if v}


def escalations(samples: Samples) -> dict[tuple[str, str, str], float]:
    return {
        (d["reason"], d["to_level"], d["target"]): value
        for (metric, labels), value in samples.items()
        if metric == "gridwork_issues_escalations_total" and (d := dict(labels))
    }


@pytest.fixture
async def service(settings: Settings, tmp_path: Path) -> AsyncIterator[Service]:
    """The service with the shipped rules, a street clock of seconds and gauges refreshed often."""
    s = make_settings(
        settings,
        issues_escalation_file=policy_file(tmp_path, FAST_STREET),
        issues_gauge_refresh_seconds=0.1,
    )
    app = build_app(s)
    async with running(app) as client:
        yield Service(client, app, s)


async def test_the_dashboards_see_open_and_overdue_issues_and_escalations_by_agency(service: Service) -> None:
    before = escalations(await scrape(service))
    lift = (
        await service.report(
            category="public_facilities", subcategory="lift", severity="critical", description="lift cable snapped"
        )
    )["issue"]["issue_id"]
    await service.report(
        category="safety_hazards",
        subcategory="stairwell_clutter",
        place={"compound": "bairuijing", "phase": "4", "building": "4"},
        description="bikes and boxes piled in the stairwell of phase 4 building 4 again",
    )
    garbage = (
        await service.report(category="environmental_sanitation", subcategory="garbage", description="bins overflow")
    )["issue"]["issue_id"]
    await service.report(category="environmental_sanitation", subcategory="sanitation", description="dirty corridor")
    await service.act(garbage, "escalate", 1, reason="the cleaning company has not come for a week")

    async def lift_overdue_at_the_street() -> dict:
        overdue = board(await scrape(service), "gridwork_issues_overdue")
        return overdue if overdue.get(("public_facilities", "street")) == 1 else {}

    overdue = await eventually(lift_overdue_at_the_street, timeout=30, what="the lift overdue at the street")
    samples = await scrape(service)
    assert nonzero(board(samples, "gridwork_issues_open")) == {
        ("public_facilities", "street"): 1,
        ("safety_hazards", "compound"): 1,
        ("environmental_sanitation", "building"): 1,
        ("environmental_sanitation", "compound"): 1,
    }
    assert nonzero(overdue) == {("public_facilities", "street"): 1}
    grew = {k: v - before.get(k, 0) for k, v in escalations(samples).items() if v != before.get(k, 0)}
    assert grew == {
        ("rule", "street", "urban_management"): 1,
        ("rule", "compound", "property_management"): 1,
        ("manual", "compound", "none"): 1,
    }

    # Urban management repairs the lift: both gauges of its row go back to 0 (not left at 1).
    v = (await service.issue(lift))["issue"]["version"]
    v = (await service.act(lift, "accept", v))["version"]
    v = (
        await service.act(lift, "assign", v, assignee_kind="urban_management", assignee_id="wuchang-urban-management")
    )["version"]
    await service.act(lift, "resolve", v, resolution="lift cable replaced")

    async def lift_row_at_zero() -> bool:
        samples = await scrape(service)
        return (
            board(samples, "gridwork_issues_open").get(("public_facilities", "street")) == 0
            and board(samples, "gridwork_issues_overdue").get(("public_facilities", "street")) == 0
        )

    await eventually(lift_row_at_zero, timeout=30, what="the resolved lift's gauges at 0")
    still_open = board(await scrape(service), "gridwork_issues_open")
    assert still_open[("safety_hazards", "compound")] == 1 and still_open[("environmental_sanitation", "building")] == 1

    if shutil.which("promtool"):  # the exposition as Prometheus' own checker sees it (CI installs promtool)
        text = (await service.client.get("/metrics")).text
        done = await asyncio.to_thread(
            subprocess.run,
            ["promtool", "check", "metrics"],
            input=text,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0 and not done.stdout.strip(), done.stdout + done.stderr


async def test_hotline_feedback_counts_as_pending_until_the_hotline_has_it(settings: Settings) -> None:
    receiver = HotlineReceiver(free_port())  # not listening yet: the 12345 platform is down
    s = make_settings(settings, hotline_callback_url=receiver.url, issues_gauge_refresh_seconds=0.1)
    app = build_app(s)
    try:
        async with running(app) as client:
            service = Service(client, app, s)
            hotline = service.token("hotline")
            assert (await client.post(ORDERS, json=work_order("GD20250414101"), headers=hotline)).status_code == 201
            assert (await client.post(ORDERS, json=work_order("GD20250414102"), headers=hotline)).status_code == 201
            v = (await service.act("hl-GD20250414101", "accept", 2))["version"]
            await service.act("hl-GD20250414101", "assign", v, assignee_kind="worker", assignee_id="w07")
            await service.act("hl-GD20250414102", "accept", 2)

            async def pending(expected: float) -> bool:
                samples = await scrape(service)
                return sample(samples, "gridwork_hotline_feedback_pending", community=COMMUNITY) == expected

            await eventually(lambda: pending(3), timeout=30, what="three status changes owed to 12345")
            assert board(await scrape(service), "gridwork_issues_open") == {("conflicts_disputes", "building"): 2}

            await receiver.start()
            await eventually(lambda: pending(0), timeout=30, what="nothing owed once 12345 has it all")
            assert sorted(r["status"] for r in receiver.received) == ["accepted", "accepted", "assigned"]
    finally:
        await receiver.stop()


async def test_only_the_instance_folding_the_board_reports_it_and_another_takes_over(settings: Settings) -> None:
    s = make_settings(settings, issues_gauge_refresh_seconds=0.1)
    first, second = build_app(s), build_app(s)
    one = {("livelihood_services", "building"): 1}
    two = {("livelihood_services", "building"): 2}
    async with contextlib.AsyncExitStack() as stack:
        async with running(first) as client:
            service = Service(client, first, s)
            await service.report(category="livelihood_services", subcategory="elderly_care", description="a walker")
            await eventually(lambda: open_is(service, one), timeout=30, what="the first instance reports")
            other = Service(await stack.enter_async_context(running(second)), second, s)
            await eventually(lambda: board_role(second, "standby"), timeout=30, what="the second stands by")
            await other.report(category="livelihood_services", subcategory="employment", description="job training")
            # Reported through the second instance, folded and counted once, by the first.
            await eventually(lambda: open_is(other, two), timeout=30, what="two open issues, counted once")
            assert reports_board(first.state.runtime) and not reports_board(second.state.runtime)
        # The first instance is gone: the second takes the board over and reports it.
        await eventually(lambda: board_role(second, "active"), timeout=30, what="the second took over")
        await eventually(lambda: open_is(other, two), timeout=30, what="the second reports the board")


async def board_role(app: FastAPI, role: str) -> bool:
    return app.state.runtime.runners["issues_board"].role == role


async def open_is(service: Service, expected: dict[tuple[str, str], float]) -> bool:
    return board(await scrape(service), "gridwork_issues_open") == expected
