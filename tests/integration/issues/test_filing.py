"""Problems found on visits, face-to-face sessions and council meetings become issues, exactly once."""

from __future__ import annotations

from datetime import timedelta

import asyncpg

from services.issues.app import build_app
from services.issues.reactions import ProblemFiling
from shared.events import now
from shared.events.visits import (
    BuildingCouncilHeld,
    BuildingCouncilHeldData,
    BuildingRegistered,
    BuildingRegisteredData,
    FaceToFaceSessionHeld,
    FaceToFaceSessionHeldData,
    HouseholdRegistered,
    HouseholdRegisteredData,
    ProblemNote,
    VisitLogged,
    VisitLoggedData,
)
from shared.eventstore import EventStore, connect
from shared.projection import schema_of
from shared.settings import Settings
from tests.harness import eventually, running
from tests.integration.issues.conftest import COMMUNITY, Service, make_settings

# Recent times: a problem found long ago would be overdue at once (its clock starts when it was found).
MORNING = now().replace(microsecond=0) - timedelta(hours=2)
FRIDAY = now().replace(microsecond=0) - timedelta(hours=1)


async def test_problems_noted_in_the_grid_become_issues_once(settings: Settings, outside: EventStore) -> None:
    s = make_settings(settings)
    app = build_app(s)
    async with running(app) as client:
        service = Service(client, app, s)
        store = outside  # visits' events
        await store.append(
            [
                BuildingRegistered.new(
                    community=COMMUNITY,
                    aggregate_id="b-p4-4",
                    actor="w12",
                    data=BuildingRegisteredData(
                        building_id="b-p4-4", compound="bairuijing", phase="4", number="4", grid_id="phase4-north"
                    ),
                )
            ],
            0,
        )
        await store.append(
            [
                HouseholdRegistered.new(
                    community=COMMUNITY,
                    aggregate_id="h-p4-4-301",
                    actor="w12",
                    data=HouseholdRegisteredData(household_id="h-p4-4-301", building_id="b-p4-4", unit="1", room="301"),
                )
            ],
            0,
        )
        visit = VisitLogged.new(
            community=COMMUNITY,
            aggregate_id="v-0414-w12-3",
            actor="w12",
            occurred_at=MORNING,
            data=VisitLoggedData(
                visit_id="v-0414-w12-3",
                worker_id="w12",
                household_id="h-p4-4-301",
                mode="regular",
                minutes=15,
                problems=[
                    ProblemNote(
                        category="safety_hazards",
                        subcategory="stairwell_clutter",
                        description="old furniture piled on the 3rd-floor landing",
                        photos=["https://img.example.cn/landing.jpg"],
                    ),
                    ProblemNote(
                        category="conflicts_disputes",
                        subcategory="pets",
                        description="a neighbour's dog barks all evening",
                    ),
                ],
            ),
        )
        session = FaceToFaceSessionHeld.new(
            community=COMMUNITY,
            aggregate_id="s-0418",
            actor="w03",
            occurred_at=FRIDAY,
            data=FaceToFaceSessionHeldData(
                session_id="s-0418",
                worker_id="w03",
                station="phase 2 station",
                party_members_present=["pm-li"],
                residents_attending=14,
                problems=[
                    ProblemNote(
                        category="livelihood_services",
                        subcategory="elderly_care",
                        description="meal delivery for elderly alone",
                    )
                ],
            ),
        )
        council = BuildingCouncilHeld.new(
            community=COMMUNITY,
            aggregate_id="c-p4-4-0320",
            actor="w12",
            occurred_at=MORNING,
            data=BuildingCouncilHeldData(
                council_id="c-p4-4-0320",
                worker_id="w12",
                building_id="b-p4-4",
                party_members=["pm-wang"],
                resident_backbones=["uncle-zhang"],
                attendees=11,
                problems=[
                    ProblemNote(
                        category="public_facilities",
                        subcategory="public_area_planning",
                        description="rules for the shared courtyard",
                    )
                ],
            ),
        )
        for event in (visit, session, council):
            last_visit_seq = (await store.append([event], 0)).last_seq
        expected = ["v-0414-w12-3-p0", "v-0414-w12-3-p1", "s-0418-p0", "c-p4-4-0320-p0"]

        async def filed() -> bool:
            return all([await service.types(i) for i in expected])

        await eventually(filed, timeout=30, what="problems filed as issues")
        [clutter] = [e for e in await service.events("v-0414-w12-3-p0") if e.type == "IssueReported"]
        d = clutter.data
        assert (d.source, d.caused_by_visit, d.reported_by, clutter.actor) == (
            "grid_worker",
            "v-0414-w12-3",
            "w12",
            "w12",
        )
        assert clutter.occurred_at == MORNING and clutter.causation_id == visit.id
        assert (d.place.compound, d.place.phase, d.place.building, d.place.unit) == ("bairuijing", "4", "b-p4-4", "1")
        assert d.photos == ["https://img.example.cn/landing.jpg"]
        [meal] = [e for e in await service.events("s-0418-p0") if e.type == "IssueReported"]
        assert (meal.data.source, meal.data.reported_by, meal.occurred_at) == ("face_to_face", "w03", FRIDAY)
        [courtyard] = [e for e in await service.events("c-p4-4-0320-p0") if e.type == "IssueReported"]
        assert (courtyard.data.source, courtyard.data.place.building) == ("council", "b-p4-4")

        async def clutter_escalated() -> bool:  # the rules apply to the hand-over too
            return "IssueEscalated" in await service.types("v-0414-w12-3-p0")

        await eventually(clutter_escalated, timeout=30, what="rule escalation of a filed problem")

    # Redelivery after a crash before the checkpoint: the filing projection sees every visit again.
    conn = await asyncpg.connect(s.database_url)
    await conn.execute(f'UPDATE "{schema_of(ProblemFiling())}"._checkpoint SET position = 0')
    await conn.close()
    nc = await connect(s, "test")
    await nc.jetstream().delete_consumer(s.stream_name(), f"{s.namespace}_{ProblemFiling.name}")
    await nc.close()
    again = build_app(s)
    async with running(again) as client:
        runner = again.state.runtime.runners[ProblemFiling.name]

        async def caught_up() -> bool:
            return (await runner.status())["checkpoint"] >= last_visit_seq

        await eventually(caught_up, timeout=30, what="filing projection folded every visit again")
        service = Service(client, again, s)
        for issue in expected:
            assert (await service.types(issue)).count("IssueReported") == 1
