"""A visit the database refuses, in the middle of a batch: the runner folds the others one by one
(savepoints of one transaction, each reading only its own staged rows), dead-letters the bad one,
and every good visit counts exactly once."""

from __future__ import annotations

from datetime import date

from shared.events import encode
from shared.settings import Settings
from tests.integration.scoring.conftest import at, community, scoring_service, visit, worker

DAY = date(2025, 11, 12)


async def test_a_poison_visit_mid_batch_is_dead_lettered_and_every_other_visit_counts_once(
    settings: Settings, env
) -> None:
    nc, store, pool = env
    good_before = [visit("w01", f"h-{n}", at(DAY, 9, n)) for n in range(4)]
    good_after = [visit("w01", f"h-{n}", at(DAY, 14, n)) for n in range(3, 7)]  # h-3 again: still distinct
    for res in await store.append_many([([e], 0) for e in (community(), worker("w01"), *good_before)]):
        assert not isinstance(res, Exception), res
    # A VisitLogged whose household id holds a NUL byte: valid JSON, but PostgreSQL text cannot store it.
    poison = visit("w01", "h-bad", at(DAY, 12))
    raw = encode(poison).replace(b'"h-bad"', b'"h-\\u0000bad"')
    await nc.jetstream().publish(poison.subject(settings.namespace), raw)
    for res in await store.append_many([([e], 0) for e in good_after]):
        assert not isinstance(res, Exception), res

    async with scoring_service(settings, max_deliver=2, redelivery_backoff_seconds=[0.05]) as svc:
        await svc.folded(timeout=60)
        dead = await pool.fetch("SELECT stream_seq, reason FROM dead_letters WHERE projection = 'scoring'")
        assert len(dead) == 1 and "0x00" in dead[0]["reason"]

        households = await pool.fetchrow(
            "SELECT num, vals FROM proj_scoring.quota_item WHERE worker_id = 'w01' AND period_key = $1 "
            "AND item = 'households'",
            DAY.isoformat(),
        )
        assert households["num"] == 7 and sorted(households["vals"]) == [f"h-{n}" for n in range(7)]
        board = await svc.get(f"/v1/communities/bairuijing/board?period={DAY}&as_of={DAY}")
        [row] = board["workers"]
        assert row["reception_entries"] == 8  # every good visit once, the poison none
        figures = await pool.fetchval("SELECT visits FROM proj_scoring.figures WHERE year = 2025")
        assert figures == 8
        # /readyz shows it: still serving (200), but degraded, and which projection holds how many (#15 item 18)
        response = await svc.client.get("/readyz")
        ready = response.json()
        assert response.status_code == 200 and ready["status"] == "degraded" and ready["dead_letters"] == 1
        assert [(p["projection"], p["dead_letters"]) for p in ready["projections"]] == [("scoring", 1)]
