"""Closing periods: QuotaPeriodClosed once per worker-period, and a late event corrects it openly."""

from __future__ import annotations

from datetime import timedelta

from services.scoring.bootstrap import ScoringDeps
from services.scoring.handlers import close_due_periods
from services.scoring.projections import ScoringProjection
from services.scoring.settings import scoring_settings
from shared.events import decode
from shared.projection import replay
from tests.harness import eventually
from tests.integration.scoring.conftest import Clock, at, scoring_service, session, shift, visit, worker


async def _closed_events(svc, kind: str = "QuotaPeriodClosed") -> list:
    stored = await svc.store.read(f"{svc.settings.namespace}.*.scoring.*.*.{kind}")
    return [decode(s.data, s.type) for s in stored]


async def _close(svc):
    return await close_due_periods(svc.clock(), deps=svc.runtime.deps, lookback_days=20)


async def test_a_week_closes_once_and_a_late_offline_session_reopens_it_as_revision_2(settings) -> None:
    clock = Clock(at("2025-11-17", 0, 30))  # Monday 00:30: week 46 (Nov 10–16) is over
    async with scoring_service(settings, clock=clock) as svc:
        # w07 worked Monday–Friday; the Friday session was held but the phone was offline.
        events = [worker("w07", on="2025-10-20")]
        for d in range(10, 15):
            day = f"2025-11-{d}"
            events += [visit("w07", f"h{d}-{k}", at(day, 9 + k), special=k == 0) for k in range(5)]
            events.append(shift("w07", at(day, 8), 300))
        await svc.folded(await svc.append(*events))

        first = await _close(svc)
        await svc.folded()
        closed = {e.data.period_key: e for e in await _closed_events(svc) if e.data.worker_id == "w07"}
        # Every working day of the window since registration, the week, and October (the month) closed.
        assert set(closed) >= {"2025-11-10", "2025-11-14", "2025-W46", "2025-10"}
        assert "2025-11-15" not in closed  # Saturday: no daily quota, nothing to close
        assert "2025-11-17" not in closed and "2025-W47" not in closed  # still running
        week = closed["2025-W46"].data
        assert (week.revision, week.points, week.rulebook, week.rulebook_version) == (1, 0.0, "5plus1", 1)
        assert [(i.item, i.actual, i.met) for i in week.items] == [("face_to_face", 0.0, False)]
        monday = closed["2025-11-10"].data
        assert {i.item: i.met for i in monday.items} == {
            "hours": True,
            "households": True,
            "problem": False,
            "special_visit": True,
        }
        assert monday.points == 3.0
        assert closed["2025-11-10"].id == closed["2025-11-10"].id  # deterministic ids: see below

        # Closing again — after the fold caught up, and right away twice — emits nothing new.
        again = await _close(svc)
        assert again.closed == [] and again.corrected == []
        count = len(await _closed_events(svc))
        await _close(svc)
        await _close(svc)
        assert len(await _closed_events(svc)) == count == len(first.closed)

        # Monday 10:00: the phone syncs the Friday session (with a party member) — it counts in week 46.
        clock.now = at("2025-11-17", 10)
        await svc.folded(await svc.append(session("w07", at("2025-11-14", 16), ["pm-sinking-03"])))
        progress = await svc.get(
            "/v1/communities/bairuijing/workers/w07/progress?at=2025-11-17T10:00:00%2B08:00",
            role="grid_worker",
            worker_id="w07",
        )
        this_week = next(p for p in progress["periods"] if p["period"] == "week")
        assert this_week["key"] == "2025-W47" and this_week["items"][0]["actual"] == 0
        last_week = await svc.get("/v1/communities/bairuijing/board?period=2025-W46&as_of=2025-11-16")
        assert last_week["workers"][0]["items_met"] == 5 * 3 + 1

        correction = await _close(svc)
        assert correction.corrected == [("bairuijing", "w07", "2025-W46")] and correction.closed == []
        await svc.folded()
        revisions = [e for e in await _closed_events(svc) if e.data.period_key == "2025-W46"]
        assert [e.data.revision for e in revisions] == [1, 2]
        fixed = revisions[1].data
        assert fixed.correction == "late_event" and fixed.previous_points == 0.0 and fixed.points == 2.0
        assert fixed.changed_items == ["face_to_face"]
        assert [(i.item, i.actual, i.met, i.points) for i in fixed.items] == [("face_to_face", 1.0, True, 2.0)]
        assert revisions[1].aggregate_version == 2  # the same aggregate, one version on

        awards = [e.data for e in await _closed_events(svc, "PointsAwarded") if e.data.period_key == "2025-W46"]
        assert [(a.kind, a.points, a.revision) for a in awards] == [("quota", 2.0, 2)]  # r1 earned nothing

        # And it stays corrected: nothing more to do, and the secretary's progress shows revision 2.
        assert (await _close(svc)).corrected == []
        progress = await svc.get("/v1/communities/bairuijing/workers/w07/progress?at=2025-11-16T10:00:00%2B08:00")
        assert next(p for p in progress["periods"] if p["period"] == "week")["closed_revision"] == 2


async def test_closing_before_the_fold_caught_up_is_recognised_as_a_duplicate(settings, env) -> None:
    nc, store, pool = env
    scoring = scoring_settings(settings)
    rules = scoring.rules()
    await store.append_many(
        [
            ([e], 0)
            for e in (
                worker("w08", on="2025-11-12"),
                *[visit("w08", f"h{k}", at("2025-11-12", 9 + k)) for k in range(5)],
            )
        ]
    )
    await replay(ScoringProjection(rules), nc=nc, pool=pool, settings=settings)  # fold, no live runner

    now = at("2025-11-13", 1)
    deps = ScoringDeps(settings=scoring, rules=rules, clock=lambda: now, pool=pool, store=store)

    def close():
        return close_due_periods(now, deps=deps, lookback_days=5)

    first = await close()
    # Nothing folded the closure yet: a second run computes the same revision 1 again, and the
    # store recognises both events by their ids (worker + period + revision).
    second = await close()
    assert first.closed == [("bairuijing", "w08", "2025-11-12")] and first.awarded == first.closed
    assert (second.closed, second.awarded, second.duplicates) == ([], [], 2)
    closes = await store.read(f"{settings.namespace}.*.scoring.quota.*.QuotaPeriodClosed")
    awards = [decode(s.data, s.type).data for s in await store.read(f"{settings.namespace}.*.scoring.points.*.*")]
    assert len(closes) == 1 and [(a.worker_id, a.points, a.kind) for a in awards] == [("w08", 1.0, "quota")]
    await replay(ScoringProjection(rules), nc=nc, pool=pool, settings=settings)
    assert (await close()).closed == []  # folded now: closed, awarded, nothing left to do


async def test_periods_before_a_worker_joined_are_not_closed(settings) -> None:
    clock = Clock(at("2025-11-20", 1) + timedelta(hours=1))
    async with scoring_service(settings, clock=clock) as svc:
        await svc.folded(await svc.append(worker("w09", on="2025-11-18")))
        report = await _close(svc)
        assert sorted(k[2] for k in report.closed) == ["2025-11-18", "2025-11-19"]


async def test_the_service_closes_ended_periods_by_itself_once_the_fold_caught_up(settings) -> None:
    clock = Clock(at("2025-11-13", 2))
    async with scoring_service(settings, clock=clock, scoring_close_interval_seconds=0.2) as svc:
        await svc.append(
            worker("w10", on="2025-11-12"), *[visit("w10", f"h{k}", at("2025-11-12", 9 + k)) for k in range(5)]
        )

        async def closed() -> list:
            return [e for e in await _closed_events(svc) if e.data.worker_id == "w10"]

        [day] = await eventually(closed, timeout=30, what="the background closer closed 2025-11-12")
        assert day.data.period_key == "2025-11-12" and day.data.points == 1.0
        metrics = (await svc.client.get("/metrics")).text
        assert 'gridwork_scoring_periods_closed_total{closing="first",period="day"}' in metrics
