"""Rules as data: a community's own variant, a malformed file, and a new version re-scored by replay."""

from __future__ import annotations

from pathlib import Path

from services.scoring import queries
from services.scoring.domain.calendar import parse_period
from services.scoring.projections import ScoringProjection
from services.scoring.settings import BUILTIN_DIR
from shared.eventstore import connect
from shared.projection import replay
from tests.integration.scoring.conftest import at, community, scoring_service, visit, worker


async def test_a_community_runs_the_4_plus_1_variant_without_code_changes(settings) -> None:
    day = "2025-11-12"
    async with scoring_service(settings, scoring_rulebooks={"xinhe": "4plus1"}) as svc:
        events = [community(), community("xinhe", name="新河社区"), worker("w01"), worker("w01", community="xinhe")]
        for c in ("bairuijing", "xinhe"):
            events += [visit("w01", f"h{k}", at(day, 9 + k), community=c) for k in range(4)]
        await svc.folded(await svc.append(*events))
        met = {}
        for c in ("bairuijing", "xinhe"):
            progress = await svc.get(f"/v1/communities/{c}/workers/w01/progress?at={day}T20:00:00%2B08:00", role="ops")
            today = progress["periods"][0]
            met[c] = (progress["rulebook"]["id"], {i["item"]: i["met"] for i in today["items"]}["households"])
        assert met == {"bairuijing": ("5plus1", False), "xinhe": ("4plus1", True)}  # 4 households: 4+1 only
        xinhe = await svc.get("/v1/communities/xinhe/rulebook", role="ops")
        assert xinhe["id"] == "4plus1" and xinhe["name_zh"] == "4+1网格工作法"


async def test_a_new_rulebook_version_rescores_the_past_by_replay(settings, tmp_path: Path) -> None:
    # Version 2 of the 5+1 book: the street lowers the daily households to 4 and doubles their points.
    v2 = (BUILTIN_DIR / "5plus1.toml").read_text().replace("version = 1", "version = 2", 1)
    v2 = v2.replace(
        'label = "contact 5 households"\nlabel_zh = "联系5户"\nunit = "households"\ntarget = 5\npoints = 1',
        'label = "contact 4 households"\nlabel_zh = "联系4户"\nunit = "households"\ntarget = 4\npoints = 2',
    )
    assert "target = 4\npoints = 2" in v2
    (tmp_path / "5plus1.toml").write_text(v2)
    day = "2025-11-12"
    async with scoring_service(settings) as svc:
        await svc.folded(
            await svc.append(community(), worker("w01"), *[visit("w01", f"h{k}", at(day, 9 + k)) for k in range(4)])
        )
        before = await svc.get(f"/v1/communities/bairuijing/board?period={day}&as_of={day}")
        assert before["rulebook"] == {"id": "5plus1", "version": 1} and not before["rescore_needed"]
        assert (before["workers"][0]["items_met"], before["workers"][0]["quota_points"]) == (0, 0.0)

    async with scoring_service(settings, scoring_rulebook_dirs=[tmp_path]) as svc:
        rules = svc.runtime.deps.rules
        stale = await svc.get(f"/v1/communities/bairuijing/board?period={day}&as_of={day}")
        assert stale["rulebook"] == {"id": "5plus1", "version": 2} and stale["rescore_needed"]

        # as `gridwork replay` does: NATS as the admin (a replay's reader is an ephemeral consumer,
        # which no service user may make), PostgreSQL as the scoring role
        admin = await connect(settings, "test-replay")
        try:
            result = await replay(ScoringProjection(rules), nc=admin, pool=svc.pool, settings=svc.settings)
        finally:
            await admin.close()
        assert result["schema"] == "proj_scoring"
        after = await svc.get(f"/v1/communities/bairuijing/board?period={day}&as_of={day}")
        assert not after["rescore_needed"]
        assert (after["workers"][0]["items_met"], after["workers"][0]["quota_points"]) == (1, 2.0)
        rows = await svc.pool.fetch(
            "SELECT item, target, actual, met, points, rulebook, rulebook_version FROM proj_scoring.quota_item "
            "WHERE worker_id = 'w01' AND period_key = $1",
            day,
        )
        assert [tuple(r) for r in rows] == [("households", 4.0, 4.0, True, 2.0, "5plus1", 2)]
        board = await queries.community_board(
            svc.pool, rules, "bairuijing", parse_period("2025-11"), parse_period(day).end
        )
        assert board["workers"][0]["quota_points"] == 2.0
