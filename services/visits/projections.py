"""Read models of the visits service.

* ``visits_directory``: who and where — communities, grids, buildings, workers, persons and
  households (with grid, tags, ledger fields and version).  Handlers validate against it and
  the API serves it.  Sealed personal fields are kept as ciphertext and dropped on erasure.
* ``visits_activity``: what was done — visits per household, each worker's day (visits,
  special-assistance visits, minutes in the grid, problems found), sessions with whether they
  count, councils, and volunteer balances.
* ``visits_on_shift``: the shifts open now (who is in the grid).
* ``visits_records``: each worker's records, the evidence behind each 5+1 item.
* ``visits_coverage``: which households were visited in person in which month (the map's visit
  coverage per building).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from shared.db import Conn
from shared.events import shanghai_day
from shared.eventstore import StoredEvent

from .domain.households import PERSONAL_FIELDS

#: Schemas of the two read models (``proj_<name>``), for the queries that read them.
DIRECTORY = "proj_visits_directory"
ACTIVITY = "proj_visits_activity"
COVERAGE = "proj_visits_coverage"
ON_SHIFT = "proj_visits_on_shift"
RECORDS = "proj_visits_records"

#: Knocks made at the door (定期敲 regular, 重点敲 priority); an online knock (网上敲) is not a visit in person.
IN_PERSON_MODES = frozenset({"regular", "priority"})


class DirectoryProjection:
    """The directory of people and places, and the household ledger."""

    name = "visits_directory"
    event_types = (
        "CommunityRegistered",
        "CommunityMoved",
        "GridDefined",
        "BuildingRegistered",
        "WorkerRegistered",
        "PersonRegistered",
        "HouseholdRegistered",
        "HouseholdProfileUpdated",
        "HouseholdTagged",
        "ResidentDataErased",
    )
    ddl = """
    CREATE TABLE IF NOT EXISTS communities (
        community text PRIMARY KEY, name text NOT NULL, street text NOT NULL, district text, city text,
        area_km2 double precision, residents integer, registered_at timestamptz NOT NULL);
    CREATE INDEX IF NOT EXISTS communities_by_street ON communities (street);
    CREATE TABLE IF NOT EXISTS grids (
        community text NOT NULL, grid_id text NOT NULL, name text NOT NULL, worker_id text,
        buildings text[] NOT NULL DEFAULT '{}', version integer NOT NULL,
        PRIMARY KEY (community, grid_id));
    CREATE TABLE IF NOT EXISTS buildings (
        community text NOT NULL, building_id text NOT NULL, compound text, phase text, number text NOT NULL,
        units integer NOT NULL, grid_id text, version integer NOT NULL,
        lat double precision, lon double precision,
        PRIMARY KEY (community, building_id));
    -- Coordinates came with BuildingRegistered v2: a read model from before gets the columns here.
    ALTER TABLE buildings ADD COLUMN IF NOT EXISTS lat double precision;
    ALTER TABLE buildings ADD COLUMN IF NOT EXISTS lon double precision;
    CREATE TABLE IF NOT EXISTS workers (
        community text NOT NULL, worker_id text NOT NULL, name text NOT NULL, role text NOT NULL,
        grid_id text, street text, version integer NOT NULL,
        PRIMARY KEY (community, worker_id));
    CREATE TABLE IF NOT EXISTS persons (
        community text NOT NULL, person_id text NOT NULL, role text NOT NULL, building_id text,
        household_id text, display_name text, version integer NOT NULL,
        PRIMARY KEY (community, person_id));
    CREATE TABLE IF NOT EXISTS households (
        community text NOT NULL, household_id text NOT NULL, building_id text NOT NULL, unit text, room text,
        grid_id text, grid_pinned boolean NOT NULL DEFAULT false, members integer,
        tags text[] NOT NULL DEFAULT '{}', fields_present text[] NOT NULL DEFAULT '{}',
        sealed jsonb NOT NULL DEFAULT '{}', erased boolean NOT NULL DEFAULT false,
        version integer NOT NULL, registered_at timestamptz NOT NULL, updated_at timestamptz NOT NULL,
        PRIMARY KEY (community, household_id));
    CREATE INDEX IF NOT EXISTS households_by_grid ON households (community, grid_id);
    CREATE INDEX IF NOT EXISTS households_by_building ON households (community, building_id);
    """

    async def apply(self, conn: Conn, events: Sequence[StoredEvent]) -> None:
        """Fold directory events one by one (they are few; the ledger import is the big burst)."""
        registered: list[tuple[Any, ...]] = []
        for stored in events:
            e = stored.event()
            d: Any = e.data
            c, v = e.community, e.aggregate_version
            if e.type == "HouseholdRegistered":
                # Buffer registrations: an imported ledger arrives as thousands of them in a row.
                registered.append(
                    (
                        c,
                        d.household_id,
                        d.building_id,
                        d.unit,
                        d.room,
                        d.grid_id,
                        d.members,
                        list(d.tags),
                        list(d.fields_present),
                        json.dumps(d.sealed),
                        v,
                        e.occurred_at,
                    )
                )
                continue
            if registered:
                await self._register_households(conn, registered)
                registered = []
            if e.type in ("CommunityRegistered", "CommunityMoved"):
                await conn.execute(
                    "INSERT INTO communities VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (community) DO "
                    "UPDATE SET name = $2, street = $3, district = $4, city = $5, area_km2 = $6, residents = $7",
                    d.community_id,
                    d.name,
                    d.street,
                    d.district,
                    d.city,
                    d.area_km2,
                    d.residents,
                    e.occurred_at,
                )
            elif e.type == "GridDefined":
                await conn.execute(
                    "INSERT INTO grids VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (community, grid_id) DO "
                    "UPDATE SET name = $3, worker_id = $4, buildings = $5, version = $6",
                    c,
                    d.grid_id,
                    d.name,
                    d.worker_id,
                    list(d.buildings),
                    v,
                )
                # A redrawn grid takes its buildings, and their households, with it.
                await conn.execute(
                    "UPDATE buildings SET grid_id = NULL WHERE community = $1 AND grid_id = $2 "
                    "AND NOT building_id = ANY($3::text[])",
                    c,
                    d.grid_id,
                    list(d.buildings),
                )
                await conn.execute(
                    "UPDATE buildings SET grid_id = $2 WHERE community = $1 AND building_id = ANY($3::text[])",
                    c,
                    d.grid_id,
                    list(d.buildings),
                )
                await conn.execute(
                    "UPDATE households h SET grid_id = b.grid_id FROM buildings b WHERE h.community = $1 "
                    "AND b.community = $1 AND h.building_id = b.building_id AND NOT h.grid_pinned "
                    "AND h.grid_id IS DISTINCT FROM b.grid_id",
                    c,
                )
                if d.worker_id:
                    await conn.execute(
                        "UPDATE workers SET grid_id = $3 WHERE community = $1 AND worker_id = $2",
                        c,
                        d.worker_id,
                        d.grid_id,
                    )
            elif e.type == "BuildingRegistered":
                await conn.execute(
                    "INSERT INTO buildings (community, building_id, compound, phase, number, units, grid_id, "
                    "version, lat, lon) VALUES ($1, $2, $3, $4, $5, $6, "
                    "COALESCE($7, (SELECT grid_id FROM grids WHERE community = $1 AND $2 = ANY(buildings))), $8, "
                    "$9, $10) ON CONFLICT (community, building_id) DO UPDATE SET compound = $3, phase = $4, "
                    "number = $5, units = $6, grid_id = COALESCE($7, buildings.grid_id), version = $8, lat = $9, "
                    "lon = $10",
                    c,
                    d.building_id,
                    d.compound,
                    d.phase,
                    d.number,
                    d.units,
                    d.grid_id,
                    v,
                    d.lat,
                    d.lon,
                )
                await conn.execute(
                    "UPDATE households h SET grid_id = b.grid_id FROM buildings b WHERE h.community = $1 "
                    "AND b.community = $1 AND b.building_id = $2 AND h.building_id = $2 AND NOT h.grid_pinned "
                    "AND h.grid_id IS DISTINCT FROM b.grid_id",
                    c,
                    d.building_id,
                )
            elif e.type == "WorkerRegistered":
                await conn.execute(
                    "INSERT INTO workers VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (community, worker_id) "
                    "DO UPDATE SET name = $3, role = $4, grid_id = $5, street = $6, version = $7",
                    c,
                    d.worker_id,
                    d.name,
                    d.role,
                    d.grid_id,
                    d.street,
                    v,
                )
            elif e.type == "PersonRegistered":
                await conn.execute(
                    "INSERT INTO persons VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (community, person_id) "
                    "DO UPDATE SET role = $3, building_id = $4, household_id = $5, display_name = $6, version = $7",
                    c,
                    d.person_id,
                    d.role,
                    d.building_id,
                    d.household_id,
                    d.display_name,
                    v,
                )
            elif e.type == "HouseholdProfileUpdated":
                await conn.execute(
                    "UPDATE households SET fields_present = $3, sealed = sealed || $4::jsonb, "
                    "members = COALESCE($5, members), version = $6, updated_at = $7 "
                    "WHERE community = $1 AND household_id = $2",
                    c,
                    d.household_id,
                    list(d.fields_present),
                    json.dumps(d.sealed),
                    d.members,
                    v,
                    e.occurred_at,
                )
            elif e.type == "HouseholdTagged":
                await conn.execute(
                    "UPDATE households SET tags = ARRAY(SELECT DISTINCT t FROM unnest(tags || $3::text[]) t "
                    "WHERE NOT t = ANY($4::text[]) ORDER BY t), version = $5, updated_at = $6 "
                    "WHERE community = $1 AND household_id = $2",
                    c,
                    d.household_id,
                    list(d.tags),
                    list(d.removed),
                    v,
                    e.occurred_at,
                )
            elif e.type == "ResidentDataErased":
                await conn.execute(
                    "UPDATE households SET erased = true, sealed = '{}', "
                    "fields_present = ARRAY(SELECT f FROM unnest(fields_present) f WHERE NOT f = ANY($3::text[])), "
                    "version = $4, updated_at = $5 WHERE community = $1 AND household_id = $2",
                    c,
                    d.household_id,
                    list(PERSONAL_FIELDS),
                    v,
                    e.occurred_at,
                )
        if registered:
            await self._register_households(conn, registered)

    async def _register_households(self, conn: Conn, rows: list[tuple[Any, ...]]) -> None:
        await conn.executemany(
            "INSERT INTO households (community, household_id, building_id, unit, room, grid_id, grid_pinned, "
            "members, tags, fields_present, sealed, version, registered_at, updated_at) "
            "VALUES ($1, $2, $3, $4, $5, "
            "COALESCE($6, (SELECT grid_id FROM buildings WHERE community = $1 AND building_id = $3)), "
            "$6 IS NOT NULL AND $6 IS DISTINCT FROM "
            "(SELECT grid_id FROM buildings WHERE community = $1 AND building_id = $3), "
            "$7, $8, $9, $10::jsonb, $11, $12, $12) ON CONFLICT (community, household_id) DO NOTHING",
            rows,
        )


def _at(when: str) -> datetime:
    return datetime.fromisoformat(when)


class WorkActivityProjection:
    """What grid workers did, folded for the field app and the ledger (counts survive erasure)."""

    name = "visits_activity"
    event_types = (
        "VisitLogged",
        "ShiftEnded",
        "FaceToFaceSessionHeld",
        "BuildingCouncilHeld",
        "ResidentBefriended",
        "TrainingAttended",
        "TalentDiscovered",
        "ResidentSurveyed",
        "VolunteerServiceLogged",
        "VolunteerPointsRedeemed",
    )
    ddl = """
    CREATE TABLE IF NOT EXISTS household_visits (
        community text NOT NULL, household_id text NOT NULL, visits integer NOT NULL,
        special_visits integer NOT NULL, last_visit_at timestamptz NOT NULL,
        PRIMARY KEY (community, household_id));
    CREATE TABLE IF NOT EXISTS worker_days (
        community text NOT NULL, worker_id text NOT NULL, day date NOT NULL,
        visits integer NOT NULL DEFAULT 0, special_visits integer NOT NULL DEFAULT 0,
        visit_minutes integer NOT NULL DEFAULT 0, shift_minutes double precision NOT NULL DEFAULT 0,
        problems integer NOT NULL DEFAULT 0, befriended integer NOT NULL DEFAULT 0,
        trainings integer NOT NULL DEFAULT 0, talents integer NOT NULL DEFAULT 0,
        surveys integer NOT NULL DEFAULT 0,
        PRIMARY KEY (community, worker_id, day));
    CREATE TABLE IF NOT EXISTS sessions (
        community text NOT NULL, session_id text NOT NULL, worker_id text NOT NULL, station text NOT NULL,
        held_at timestamptz NOT NULL, party_members integer NOT NULL, residents integer NOT NULL,
        topics text[] NOT NULL, problems integer NOT NULL,
        PRIMARY KEY (community, session_id));
    CREATE TABLE IF NOT EXISTS councils (
        community text NOT NULL, council_id text NOT NULL, worker_id text NOT NULL, building_id text NOT NULL,
        held_at timestamptz NOT NULL, party_members integer NOT NULL, resident_backbones integer NOT NULL,
        decisions text[] NOT NULL, problems integer NOT NULL,
        PRIMARY KEY (community, council_id));
    CREATE TABLE IF NOT EXISTS volunteer_points (
        community text NOT NULL, household_id text NOT NULL, earned bigint NOT NULL DEFAULT 0,
        redeemed bigint NOT NULL DEFAULT 0, hours double precision NOT NULL DEFAULT 0,
        PRIMARY KEY (community, household_id));
    """

    async def apply(self, conn: Conn, events: Sequence[StoredEvent]) -> None:
        """Aggregate the batch in memory, then one upsert per table (a sync burst is 500 visits)."""
        household: dict[tuple[str, str], list[Any]] = {}
        days: dict[tuple[str, str, Any], dict[str, float]] = defaultdict(lambda: defaultdict(float))
        sessions: list[tuple[Any, ...]] = []
        councils: list[tuple[Any, ...]] = []
        points: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0, 0, 0.0])
        for stored in events:
            # json.loads, not the pydantic model: this is the hot path of a sync burst.
            raw = json.loads(stored.data)
            d, c, when = raw["data"], raw["community"], raw["occurred_at"]
            t = stored.type
            if t == "VisitLogged":
                special = 1 if d.get("special_assistance") else 0
                key = (c, d["household_id"])
                at = _at(when)
                row = household.get(key)
                if row is None:
                    household[key] = [1, special, at]
                else:
                    row[0] += 1
                    row[1] += special
                    row[2] = max(row[2], at)
                day = days[(c, d["worker_id"], shanghai_day(when))]
                day["visits"] += 1
                day["special_visits"] += special
                day["visit_minutes"] += d.get("minutes", 0)
                day["problems"] += len(d.get("problems", ()))
            elif t == "ShiftEnded":
                days[(c, d["worker_id"], shanghai_day(d["started_at"]))]["shift_minutes"] += d["minutes"]
            elif t == "FaceToFaceSessionHeld":
                sessions.append(
                    (
                        c,
                        d["session_id"],
                        d["worker_id"],
                        d["station"],
                        _at(when),
                        len(d["party_members_present"]),
                        d["residents_attending"],
                        d["topics"],
                        len(d["problems"]),
                    )
                )
                days[(c, d["worker_id"], shanghai_day(when))]["problems"] += len(d["problems"])
            elif t == "BuildingCouncilHeld":
                councils.append(
                    (
                        c,
                        d["council_id"],
                        d["worker_id"],
                        d["building_id"],
                        _at(when),
                        len(d["party_members"]),
                        len(d["resident_backbones"]),
                        d["decisions"],
                        len(d["problems"]),
                    )
                )
                days[(c, d["worker_id"], shanghai_day(when))]["problems"] += len(d["problems"])
            elif t == "ResidentBefriended":
                days[(c, d["worker_id"], shanghai_day(when))]["befriended"] += 1
            elif t == "TrainingAttended":
                days[(c, d["worker_id"], shanghai_day(when))]["trainings"] += 1
            elif t == "TalentDiscovered":
                days[(c, d["worker_id"], shanghai_day(when))]["talents"] += 1
            elif t == "ResidentSurveyed" and d.get("worker_id"):
                days[(c, d["worker_id"], shanghai_day(when))]["surveys"] += 1
            elif t == "VolunteerServiceLogged":
                acc = points[(c, d["household_id"])]
                acc[0] += d["points"]
                acc[2] += d["hours"]
            elif t == "VolunteerPointsRedeemed":
                points[(c, d["household_id"])][1] += d["points"]
        if household:
            await conn.executemany(
                "INSERT INTO household_visits VALUES ($1, $2, $3, $4, $5) ON CONFLICT (community, household_id) "
                "DO UPDATE SET visits = household_visits.visits + $3, "
                "special_visits = household_visits.special_visits + $4, "
                "last_visit_at = GREATEST(household_visits.last_visit_at, $5)",
                [(c, h, n, s, at) for (c, h), (n, s, at) in household.items()],
            )
        if days:
            cols = (
                "visits",
                "special_visits",
                "visit_minutes",
                "shift_minutes",
                "problems",
                "befriended",
                "trainings",
                "talents",
                "surveys",
            )
            sets = ", ".join(f"{col} = worker_days.{col} + EXCLUDED.{col}" for col in cols)
            await conn.executemany(
                f"INSERT INTO worker_days (community, worker_id, day, {', '.join(cols)}) "
                f"VALUES ($1, $2, $3, {', '.join(f'${i}' for i in range(4, 4 + len(cols)))}) "
                f"ON CONFLICT (community, worker_id, day) DO UPDATE SET {sets}",
                [
                    (c, w, day, *(int(v[col]) if col != "shift_minutes" else float(v[col]) for col in cols))
                    for (c, w, day), v in days.items()
                ],
            )
        if sessions:
            await conn.executemany(
                "INSERT INTO sessions VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING", sessions
            )
        if councils:
            await conn.executemany(
                "INSERT INTO councils VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING", councils
            )
        if points:
            await conn.executemany(
                "INSERT INTO volunteer_points VALUES ($1, $2, $3, $4, $5) ON CONFLICT (community, household_id) "
                "DO UPDATE SET earned = volunteer_points.earned + $3, redeemed = volunteer_points.redeemed + $4, "
                "hours = volunteer_points.hours + $5",
                [(c, h, int(e), int(r), hrs) for (c, h), (e, r, hrs) in points.items()],
            )


class VisitCoverageProjection:
    """Households visited in person each month (Shanghai time): a knock at the door (regular or
    priority mode) that found someone — ``not_home`` is a try, not a visit.  A projection of its own
    (not a table of ``visits_activity``) so that it folds the whole history when it first starts."""

    name = "visits_coverage"
    event_types = ("VisitLogged",)
    ddl = """
    CREATE TABLE IF NOT EXISTS household_months (
        community text NOT NULL, month text NOT NULL, household_id text NOT NULL,
        in_person integer NOT NULL, last_visit_at timestamptz NOT NULL,
        PRIMARY KEY (community, month, household_id));
    """

    async def apply(self, conn: Conn, events: Sequence[StoredEvent]) -> None:
        """Count each batch's in-person visits per (community, month, household), then one upsert."""
        counts: dict[tuple[str, str, str], list[Any]] = {}
        for stored in events:
            raw = json.loads(stored.data)  # the hot path of a sync burst, as in visits_activity
            d = raw["data"]
            if d.get("mode") not in IN_PERSON_MODES or d.get("outcome") == "not_home":
                continue
            at = _at(raw["occurred_at"])
            key = (raw["community"], shanghai_day(at).strftime("%Y-%m"), d["household_id"])
            row = counts.get(key)
            if row is None:
                counts[key] = [1, at]
            else:
                row[0] += 1
                row[1] = max(row[1], at)
        if counts:
            await conn.executemany(
                "INSERT INTO household_months VALUES ($1, $2, $3, $4, $5) "
                "ON CONFLICT (community, month, household_id) DO UPDATE SET "
                "in_person = household_months.in_person + $4, "
                "last_visit_at = GREATEST(household_months.last_visit_at, $5)",
                [(c, m, h, n, at) for (c, m, h), (n, at) in counts.items()],
            )


class OnShiftProjection:
    """Who is in the grid now: each worker's open shift (ShiftStarted adds it, ShiftEnded removes
    it) — the secretary's Today page.  A projection of its own so that it folds the whole history
    when it first starts."""

    name = "visits_on_shift"
    event_types = ("ShiftStarted", "ShiftEnded")
    ddl = """
    CREATE TABLE IF NOT EXISTS open_shifts (
        community text NOT NULL, worker_id text NOT NULL, shift_id text NOT NULL,
        grid_id text, started_at timestamptz NOT NULL,
        PRIMARY KEY (community, worker_id, shift_id));
    """

    async def apply(self, conn: Conn, events: Sequence[StoredEvent]) -> None:
        """The batch's starts, then its ends (an end always follows its start in the stream, so a
        shift started and ended in one batch is inserted and removed again)."""
        started, ended = [], []
        for stored in events:
            raw = json.loads(stored.data)
            d = raw["data"]
            key = (raw["community"], d["worker_id"], d["shift_id"])
            if raw["type"] == "ShiftStarted":
                started.append((*key, d.get("grid_id"), _at(raw["occurred_at"])))
            else:
                ended.append(key)
        if started:
            await conn.executemany(
                "INSERT INTO open_shifts VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING", started
            )
        if ended:
            await conn.executemany(
                "DELETE FROM open_shifts WHERE community = $1 AND worker_id = $2 AND shift_id = $3", ended
            )


#: What each record kind's event says of it, for the worker's page (kind, record id field, detail).
RECORD_EVENTS: dict[str, tuple[str, str]] = {
    "VisitLogged": ("visit", "visit_id"),
    "FaceToFaceSessionHeld": ("face_to_face", "session_id"),
    "BuildingCouncilHeld": ("building_council", "council_id"),
    "ResidentBefriended": ("befriended", "friend_id"),
    "TrainingAttended": ("training", "attendance_id"),
    "TalentDiscovered": ("talent", "talent_id"),
    "ResidentSurveyed": ("survey", "survey_id"),
    "ShiftEnded": ("shift", "shift_id"),
    "IssueReported": ("problem", "issue_id"),
}
#: The record kinds, as the API names them.
RECORD_KINDS: tuple[str, ...] = tuple(kind for kind, _ in RECORD_EVENTS.values())


def _record_detail(kind: str, d: dict[str, Any]) -> str:
    """A short, non-personal description of a record: codes and numbers only, never free text."""
    if kind == "visit":
        special = " special" if d.get("special_assistance") else ""
        return f"{d.get('mode')}{special} {d.get('outcome', 'contacted')} {d.get('minutes', 0)} min"
    if kind == "shift":
        return f"{round(float(d.get('minutes', 0)))} min"
    if kind == "problem":
        return str(d.get("category", ""))
    if kind == "training":
        return f"{d.get('hours', 1)} h"
    if kind == "talent":
        return str(d.get("field", ""))
    if kind == "face_to_face":
        return f"{len(d.get('party_members_present') or [])} party members, {d.get('residents_attending', 0)} residents"
    if kind == "building_council":
        return f"{len(d.get('party_members') or [])} party members, {d.get('attendees', 0)} attendees"
    if kind == "survey":
        return f"satisfaction {d.get('satisfaction')}"
    return ""


class WorkRecordsProjection:
    """Each grid worker's records, one row each — visits, sessions, councils, friends, trainings,
    talents, surveys, ended shifts and the problems they reported — so the secretary can see which
    records counted for each 5+1 item.  Codes and numbers only: free text stays sealed in the
    events.  A projection of its own so that it folds the whole history when it first starts."""

    name = "visits_records"
    event_types = tuple(RECORD_EVENTS)
    ddl = """
    CREATE TABLE IF NOT EXISTS work_records (
        seq bigint PRIMARY KEY, community text NOT NULL, worker_id text NOT NULL, day date NOT NULL,
        at timestamptz NOT NULL, kind text NOT NULL, record_id text NOT NULL, household_id text,
        building_id text, detail text NOT NULL);
    CREATE INDEX IF NOT EXISTS work_records_worker ON work_records (community, worker_id, day);
    """

    async def apply(self, conn: Conn, events: Sequence[StoredEvent]) -> None:
        rows = []
        for stored in events:
            raw = json.loads(stored.data)
            d = raw["data"]
            kind, id_field = RECORD_EVENTS[raw["type"]]
            worker = d.get("reported_by") if kind == "problem" else d.get("worker_id")
            if kind == "problem" and d.get("source", "grid_worker") != "grid_worker":
                continue  # the hotline's, a resident's, an app's: no worker's record
            if not worker:
                continue
            at = _at(raw["occurred_at"])
            place = d.get("place") or {}
            building = d.get("building_id") or (place.get("building") if isinstance(place, dict) else None)
            rows.append(
                (stored.seq, raw["community"], worker, shanghai_day(at), at, kind, str(d.get(id_field, "")),
                 d.get("household_id"), building, _record_detail(kind, d))
            )  # fmt: skip
        if rows:
            await conn.executemany(
                "INSERT INTO work_records VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING",
                rows,
            )
