"""One poison event, one answer (#15 item 10): a malformed VisitLogged — its minutes a string, no
household — written straight into the store (as the admin: no API would take it) is dead-lettered
by every projection that folds VisitLogged, and counted by none.  Scoring used to count it (its
visit figure then exceeded the visits read model's by one) while the visits projections refused it."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from shared.events import encode
from shared.eventstore import connect
from shared.settings import Settings
from tests.harness import auth, eventually, four_services
from tests.integration.scoring.conftest import at, community, visit, worker

DAY = date(2025, 11, 12)


async def test_a_malformed_visit_is_dead_lettered_by_every_projection_that_folds_visits(settings: Settings) -> None:
    good = visit("w01", "h-1", at(DAY, 9))
    bad = visit("w01", "h-2", at(DAY, 10))
    poison = json.loads(encode(bad))
    del poison["data"]["household_id"]
    poison["data"]["minutes"] = "ten"
    nc = await connect(settings, "tests-admin")
    try:
        js = nc.jetstream()
        for e in (community(), worker("w01"), good):
            await js.publish(e.subject(settings.namespace), encode(e))
        ack = await js.publish(bad.subject(settings.namespace), json.dumps(poison, separators=(",", ":")).encode())
    finally:
        await nc.close()

    async with four_services(settings) as (apps, clients):
        folding = {
            service: sorted(
                name for name, r in app.state.runtime.runners.items() if "VisitLogged" in r.projection.event_types
            )
            for service, app in apps.items()
        }
        assert folding["scoring"] and folding["visits"], folding

        async def settled() -> dict[str, Any] | None:
            ready = {s: (await c.get("/readyz")).json() for s, c in clients.items()}
            for answer in ready.values():
                if any(p.get("lag_events", 1) or "error" in p for p in answer["projections"]):
                    return None
            return ready

        ready = await eventually(settled, timeout=60, what="every projection past the poison")
        held = {
            s: {p["projection"]: p["dead_letters"] for p in answer["projections"] if p["dead_letters"]}
            for s, answer in ready.items()
        }
        # Every projection that folds VisitLogged holds it as a dead letter; none other holds any.
        assert held == {s: dict.fromkeys(names, 1) for s, names in folding.items()}, held
        # …and none counted it: scoring's visit figure is the one good visit.
        sec = auth(settings, "secretary", community="bairuijing")
        figures = (await clients["scoring"].get("/v1/communities/bairuijing/figures?year=2025", headers=sec)).json()
        assert figures["visits"]["value"] == 1, figures
    assert ack.seq > 0
