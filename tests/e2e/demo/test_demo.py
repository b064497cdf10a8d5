"""The demo, headless and short: a week or so in Bairuijing through the public APIs of four real
service processes, then the board checked against the work the demo played (its plan, folded from
the generated events it sent)."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

import httpx
import pytest

from services.cli.demo import COMMUNITY, Demo, demo_environment, demo_receiver, demo_window, working_days
from services.cli.embedded import free_port
from services.cli.stack import SERVICE_NAMES, LocalStack
from shared.auth import mint_token
from shared.events import SHANGHAI, now
from shared.settings import Settings


@pytest.fixture
def stack(settings: Settings, monkeypatch: pytest.MonkeyPatch):
    port = free_port()
    for key, value in demo_environment(port).items():
        monkeypatch.setenv(key, value)
    ports = {f"{name}_port": free_port() for name in SERVICE_NAMES}
    local = LocalStack(settings.model_copy(update=ports))
    endpoints = local.start(echo=lambda _line: None)
    yield local, endpoints, port
    local.stop(echo=lambda _line: None)


async def test_a_headless_week_in_bairuijing_shows_on_the_board_as_it_was_worked(stack) -> None:
    local, endpoints, port = stack
    days = demo_window(10, now().date())
    receiver = demo_receiver(port)
    await receiver.start()
    demo = Demo(local.settings, endpoints["services"], receiver, days, households=600, seed=3)
    try:
        out = await demo.run()
    finally:
        await demo.close()
        await receiver.stop()

    plan = demo.plan
    worked = working_days(days)
    assert worked, "the window has working days"
    # Every worker's daily items, day by day, as the scoring service folded them from the stream.
    token = mint_token(local.settings, role="secretary", community=COMMUNITY)
    async with httpx.AsyncClient(
        base_url=endpoints["services"]["scoring"], timeout=30, headers={"Authorization": f"Bearer {token}"}
    ) as client:
        for w in plan.workers:
            for day in worked:
                r = await client.get(
                    f"/v1/communities/{COMMUNITY}/workers/{w.worker_id}/progress",
                    params={"at": datetime.combine(day, datetime.min.time(), SHANGHAI).replace(hour=20).isoformat()},
                )
                assert r.status_code == 200, r.text
                daily = next(p for p in r.json()["periods"] if p["period"] == "day")
                items = {i["item"]: i for i in daily["items"]}
                did = plan.day(w.worker_id, day)
                assert items["households"]["actual"] == len(did.households), (w.worker_id, day)
                assert items["hours"]["actual"] == pytest.approx(did.minutes / 60), (w.worker_id, day)
                assert items["problem"]["actual"] == did.problems, (w.worker_id, day)
                assert items["special_visit"]["met"] == (did.special_visits >= 1), (w.worker_id, day)
        # The board ranks diligent workers above the rest: the board of the month that holds most of
        # the played working days (the last day's month may hold none yet).
        month = Counter(f"{d:%Y-%m}" for d in worked).most_common(1)[0][0]
        as_of = max(d for d in days if f"{d:%Y-%m}" == month)
        r = await client.get(f"/v1/communities/{COMMUNITY}/board", params={"period": month, "as_of": as_of.isoformat()})
        assert r.status_code == 200, r.text
        board = r.json()["workers"]

    rank = {w["worker_id"]: w["total"] for w in board}
    profile = {w.worker_id: w.profile for w in plan.workers}
    assert min(rank[w] for w in rank if profile[w] == "full") > max(rank[w] for w in rank if profile[w] == "weak")
    # The figures add up to what was played.
    figures = out["figures"]
    in_year = sum(work.visits for (_worker, day), work in plan.work.items() if day.year == figures["year"])
    assert figures["visits"]["value"] >= in_year > 0  # the four cases add none
    assert figures["ledger"]["households"] == 600
    # The four cases reached their recipients: the police duty line (webhook and SMS), property
    # management, and the hotline got its feedback.
    paths = [r.path for r in out["received"]]
    assert "/webhook/police-duty" in paths and "/sms" in paths and "/hotline" in paths
    assert any(r.query.get("key") == "demo-wuye-robot-key" for r in out["received"])
