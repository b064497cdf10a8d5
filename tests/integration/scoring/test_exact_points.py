"""Points are exact (#15 item 20): a standing adds its points up the same however the events were
batched — live in small batches, or in one replay — and equal scores rank equally."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from services.scoring.projections import ScoringProjection
from services.scoring.settings import scoring_settings
from shared.projection import replay
from shared.settings import Settings
from tests.integration.scoring.conftest import at, community, scoring_service, visit, worker

DAY = date(2025, 11, 12)
VISITS = 87  # reception points: 87 × 0.1 = 8.7, which float additions in batches do not reach


async def test_points_add_up_exactly_live_and_replayed_and_equal_scores_rank_equally(settings: Settings) -> None:
    async with scoring_service(settings, projection_batch=3) as svc:
        await svc.append(community(), worker("w01"), worker("w02"))
        # w01 and w02 do the same work; interleaved, their visits fold in batches of different shapes
        visits = [visit(w, f"h-{w}-{n}", at(DAY, 8 + n // 20, n % 60)) for n in range(VISITS) for w in ("w01", "w02")]
        visits = visits[::2] + visits[1::2][::-1]  # w01 early in the stream, w02 late and reversed
        await svc.append(*visits)
        await svc.folded(timeout=120)

        rows = await svc.pool.fetch(
            "SELECT worker_id, grain, reception_points FROM proj_scoring.standing ORDER BY worker_id, grain"
        )
        assert [(r["worker_id"], r["grain"], Decimal(str(r["reception_points"]))) for r in rows] == [
            (w, g, Decimal("8.7")) for w in ("w01", "w02") for g in ("d", "m")
        ]
        board = await svc.get(f"/v1/communities/bairuijing/board?period={DAY}&as_of={DAY}")
        ranked = {w["worker_id"]: (w["rank"], w["total"], w["reception_points"]) for w in board["workers"]}
        assert ranked["w01"] == ranked["w02"] and ranked["w01"][0] == 1 and ranked["w01"][2] == 8.7

        # A replay folds the same stream in one batch: the same numbers, to the last digit.
        rebuilt = await replay(
            ScoringProjection(scoring_settings(svc.settings).rules()),
            nc=svc.writer.nc,
            pool=svc.pool,
            settings=svc.settings,
            swap=False,
            target_schema="proj_scoring_fresh",
        )
        assert rebuilt["skipped"] == []
        dump = "SELECT worker_id, grain, day, {points} FROM {schema}.standing ORDER BY 1, 2, 3"
        points = "attendance_points, reception_points, award_points, quota_points"
        live = [tuple(r) for r in await svc.pool.fetch(dump.format(points=points, schema="proj_scoring"))]
        fresh = [tuple(r) for r in await svc.pool.fetch(dump.format(points=points, schema="proj_scoring_fresh"))]
        assert live == fresh and len(live) == 4
