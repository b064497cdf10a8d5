"""The scoring read model: quotas per worker and period, standings, community figures.

One projection (schema ``proj_scoring``) folds everything scoring needs, so that one checkpoint
covers all of it and a replay rebuilds all of it:

* ``quota_item``   — per worker, period and item: target, actual, met, points (and the
                     rulebook + version that scored it).  ``actual``/``met``/``points`` are
                     generated columns: the formula lives in one place per language
                     (here and ``Item.evaluate``).
* ``standing``     — the points evaluation (评优积分制) per worker, per day and per month:
                     attendance, reception-log entries, awards, quota points, items met.
                     Boards read a handful of rows per worker instead of summing items.
* ``figures``, ``ledger``, ``household``, ``issue``, ``training_seen`` — the community figures.
* ``community``, ``roster`` — community → street and worker → community, from the events.
* ``closure``      — the last closed revision of each worker-period (folded from scoring's own
                     ``QuotaPeriodClosed``), and ``changed_seq`` telling the closer which closed
                     periods moved since (a late event) and need a correction.

The fold is built for speed: each batch is decoded with the stdlib's C JSON scanner (no
pydantic), aggregated in dictionaries, then written in ONE statement of data-modifying CTEs
(``FOLD``): item upserts, standings, figures, issues.  Old and new values of an item come back
from its upsert (``prev_*`` columns), so crossing a target moves the standings inside the same
statement without reading anything first.  Rare directory events (communities, workers,
households) and scoring's own closures take a few statements more.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import date
from typing import Any

from pydantic_core import from_json

from shared.db import Conn
from shared.eventstore import StoredEvent

from .calendar import DayInfo, Period, day_info, local_day_key
from .domain import Item, Rulebook, RuleSet, Source

SCHEMA = "proj_scoring"
SEP = "\x1f"  # joins a batch's distinct values into one text parameter per row

#: Events the figures, the roster and the closing bookkeeping read (the rulebooks add theirs).
BASE_EVENT_TYPES = (
    "CommunityRegistered",
    "WorkerRegistered",
    "HouseholdRegistered",
    "HouseholdProfileUpdated",
    "ResidentDataErased",
    "VisitLogged",
    "TrainingAttended",
    "ResidentSurveyed",
    "IssueReported",
    "IssueEscalated",
    "IssueResolved",
    "IssueClosed",
    "IssueMerged",
    "IssueReopened",
    "QuotaPeriodClosed",
    "PointsAwarded",
)

_ACTUAL = "(CASE WHEN rate THEN CASE WHEN den > 0 THEN num / den ELSE 0 END ELSE num / divisor END)"

DDL = f"""
CREATE TABLE IF NOT EXISTS quota_item (
    community        text    NOT NULL,
    worker_id        text    NOT NULL,
    period_key       text    NOT NULL,
    item             text    NOT NULL,
    period           text    NOT NULL,
    due              date    NOT NULL,
    num              float8  NOT NULL DEFAULT 0,
    den              float8  NOT NULL DEFAULT 0,
    vals             text[],
    target           float8,
    points_if_met    float8  NOT NULL,
    divisor          float8  NOT NULL DEFAULT 1,
    rate             boolean NOT NULL DEFAULT false,
    indicator        boolean NOT NULL DEFAULT false,
    actual           float8  GENERATED ALWAYS AS {_ACTUAL} STORED,
    met              boolean GENERATED ALWAYS AS (target IS NOT NULL AND {_ACTUAL} >= target) STORED,
    points           float8  GENERATED ALWAYS AS
                         (CASE WHEN target IS NOT NULL AND {_ACTUAL} >= target THEN points_if_met ELSE 0 END) STORED,
    prev_num         float8,
    prev_met         boolean,
    prev_points      float8,
    rulebook         text    NOT NULL,
    rulebook_version integer NOT NULL,
    changed_seq      bigint  NOT NULL,
    PRIMARY KEY (community, worker_id, period_key, item)
) WITH (fillfactor = 80);  -- room on the page for HOT updates: rows are updated many times a day
CREATE TABLE IF NOT EXISTS standing (
    community          text    NOT NULL,
    grain              text    NOT NULL CHECK (grain IN ('d', 'm')),
    day                date    NOT NULL,
    worker_id          text    NOT NULL,
    attendance         integer NOT NULL DEFAULT 0,
    reception          integer NOT NULL DEFAULT 0,
    items_met          integer NOT NULL DEFAULT 0,
    attendance_points  float8  NOT NULL DEFAULT 0,
    reception_points   float8  NOT NULL DEFAULT 0,
    award_points       float8  NOT NULL DEFAULT 0,
    quota_points       float8  NOT NULL DEFAULT 0,
    PRIMARY KEY (community, grain, day, worker_id)
) WITH (fillfactor = 80);
CREATE TABLE IF NOT EXISTS figures (
    community          text    NOT NULL,
    year               integer NOT NULL,
    visits             bigint  NOT NULL DEFAULT 0,
    trainings          integer NOT NULL DEFAULT 0,
    surveys            integer NOT NULL DEFAULT 0,
    surveyed_visited   integer NOT NULL DEFAULT 0,
    surveyed_knows     integer NOT NULL DEFAULT 0,
    surveyed_satisfied integer NOT NULL DEFAULT 0,
    PRIMARY KEY (community, year)
);
CREATE TABLE IF NOT EXISTS training_seen (
    community   text    NOT NULL,
    year        integer NOT NULL,
    training_id text    NOT NULL,
    PRIMARY KEY (community, year, training_id)
);
CREATE TABLE IF NOT EXISTS household (
    community    text    NOT NULL,
    household_id text    NOT NULL,
    fields       text[]  NOT NULL,
    filled       integer NOT NULL,
    complete     boolean NOT NULL,
    PRIMARY KEY (community, household_id)
);
CREATE TABLE IF NOT EXISTS ledger (
    community  text    PRIMARY KEY,
    households integer NOT NULL DEFAULT 0,
    complete   integer NOT NULL DEFAULT 0,
    filled     bigint  NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS issue (
    community text    NOT NULL,
    issue_id  text    NOT NULL,
    category  text,
    level     text,
    open      boolean,  -- NULL: only follow-ups seen (counts as open)
    PRIMARY KEY (community, issue_id)
);
CREATE INDEX IF NOT EXISTS issue_open ON issue (community, category, level) WHERE open IS NOT FALSE;
CREATE TABLE IF NOT EXISTS community (
    community text PRIMARY KEY,
    name      text,
    street    text,
    district  text,
    city      text
);
CREATE INDEX IF NOT EXISTS community_street ON community (street, community);
CREATE TABLE IF NOT EXISTS roster (
    community     text NOT NULL,
    worker_id     text NOT NULL,
    name          text,
    role          text NOT NULL,
    grid_id       text,
    registered_on date NOT NULL,
    PRIMARY KEY (community, worker_id)
);
CREATE TABLE IF NOT EXISTS closure (
    community        text    NOT NULL,
    worker_id        text    NOT NULL,
    period_key       text    NOT NULL,
    period           text    NOT NULL,
    revision         integer NOT NULL,
    items            jsonb   NOT NULL,
    points           float8  NOT NULL,
    rulebook         text    NOT NULL,
    rulebook_version integer NOT NULL,
    closed_seq       bigint  NOT NULL,
    changed_seq      bigint  NOT NULL,
    awarded_points   float8  NOT NULL DEFAULT 0,
    awarded_revision integer NOT NULL DEFAULT 0,
    PRIMARY KEY (community, worker_id, period_key)
);
CREATE INDEX IF NOT EXISTS closure_changed ON closure (changed_seq);
CREATE TABLE IF NOT EXISTS rulebook_use (
    community text    NOT NULL,
    rulebook  text    NOT NULL,
    version   integer NOT NULL,
    PRIMARY KEY (community, rulebook, version)
);
"""

_ITEM_COLUMNS = (
    "community, worker_id, period_key, item, period, due, num, den, target, points_if_met, divisor, rate, "
    "indicator, rulebook, rulebook_version"
)
_ITEM_SETS = """prev_num = q.num, prev_met = q.met, prev_points = q.points,
            target = EXCLUDED.target, points_if_met = EXCLUDED.points_if_met, divisor = EXCLUDED.divisor,
            rate = EXCLUDED.rate, indicator = EXCLUDED.indicator, rulebook = EXCLUDED.rulebook,
            rulebook_version = EXCLUDED.rulebook_version, changed_seq = EXCLUDED.changed_seq"""
_RETURNING = (
    "RETURNING q.community, q.worker_id, q.period_key, q.item, q.due, q.rulebook, q.indicator, q.target, "
    "q.prev_num, q.prev_met, q.prev_points, q.num, q.met, q.points"
)


def _unnest(first: int, types: str) -> str:
    return ", ".join(f"${first + i}::{t}[]" for i, t in enumerate(types.split()))


_STANDING_COLUMNS = (
    "community, grain, day, worker_id, attendance, reception, items_met, attendance_points, reception_points, "
    "award_points, quota_points"
)
_ITEM_INPUT = """community text, worker_id text, period_key text, item text, period text, due date, {measure},
    target float8, points_if_met float8, divisor float8, rate boolean, indicator boolean, rulebook text,
    rulebook_version integer"""

#: Session-private staging tables the batch's big row sets are COPied into (binary COPY costs a
#: fraction of array parameters, on both sides).  The statement reading one empties it as it reads
#: (``DELETE … RETURNING``), so a savepoint's retry or the next batch never sees old rows.
STAGING = f"""
CREATE TEMP TABLE IF NOT EXISTS _fold_add ({_ITEM_INPUT.format(measure="num float8, den float8")})
    ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS _fold_dist ({_ITEM_INPUT.format(measure="vals text")}) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS _fold_standing (community text, grain text, day date, worker_id text,
    attendance integer, reception integer, items_met integer, attendance_points float8, reception_points float8,
    award_points float8, quota_points float8) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS _fold_issue (community text, issue_id text, category text, level text, open boolean)
    ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS _fold_household_key (community text, household_id text) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS _fold_household (community text, household_id text, fields text, filled integer,
    complete boolean) ON COMMIT DELETE ROWS;
"""

#: The whole fold of a batch in ONE statement: item upserts, closures to look at again,
#: standings (their deltas computed from each item's old and new values, plus the reception and
#: award deltas aggregated in Python), figures, trainings, issues, rulebooks used.  The big row
#: sets come from the staging tables; the small ones are array parameters.  Distinct measures
#: send the batch's values of a row joined by SEP; only unseen ones count.
FOLD = f"""
WITH add_in AS (
    DELETE FROM pg_temp._fold_add RETURNING *
), add_rows AS (
    INSERT INTO quota_item AS q ({_ITEM_COLUMNS}, changed_seq)
    SELECT community, worker_id, period_key, item, period, due, num, den, target, points_if_met, divisor, rate,
           indicator, rulebook, rulebook_version, $1::bigint
    FROM add_in
    ON CONFLICT (community, worker_id, period_key, item) DO UPDATE SET {_ITEM_SETS},
        num = q.num + EXCLUDED.num, den = q.den + EXCLUDED.den
    {_RETURNING}
), dist_in AS (
    DELETE FROM pg_temp._fold_dist RETURNING *
), dist_rows AS (
    INSERT INTO quota_item AS q ({_ITEM_COLUMNS}, vals, changed_seq)
    SELECT community, worker_id, period_key, item, period, due, cardinality(v), 0, target, points_if_met, divisor,
           rate, indicator, rulebook, rulebook_version, v, $1::bigint
    FROM (SELECT t.*, string_to_array(t.vals, E'\\x1f') AS v FROM dist_in AS t) AS u
    ON CONFLICT (community, worker_id, period_key, item) DO UPDATE SET {_ITEM_SETS},
        vals = q.vals || ARRAY(SELECT x FROM unnest(EXCLUDED.vals) AS x WHERE x <> ALL (q.vals)),
        num = q.num + (SELECT count(*) FROM unnest(EXCLUDED.vals) AS x WHERE x <> ALL (q.vals))
    WHERE NOT (EXCLUDED.vals <@ q.vals)
    {_RETURNING}
), changed AS (
    SELECT * FROM add_rows UNION ALL SELECT * FROM dist_rows
), marks AS (
    UPDATE closure AS c SET changed_seq = $1
    FROM (SELECT DISTINCT community, worker_id, period_key FROM changed) AS u
    WHERE c.community = u.community AND c.worker_id = u.worker_id AND c.period_key = u.period_key
    RETURNING 1
), attendance AS (
    SELECT * FROM unnest($2::text[], $3::text[], $4::float8[]) AS a(rulebook, item, points)
), item_deltas AS (
    SELECT ch.community, g.grain, g.day, ch.worker_id,
           (a.points IS NOT NULL AND ch.target IS NOT NULL AND coalesce(ch.prev_num, 0) = 0 AND ch.num > 0)
               AS attended,
           CASE WHEN ch.indicator THEN 0 ELSE ch.met::int - coalesce(ch.prev_met, false)::int END AS met_delta,
           ch.points - coalesce(ch.prev_points, 0) AS points_delta,
           coalesce(a.points, 0) AS att_points
    FROM changed AS ch
    LEFT JOIN attendance AS a ON a.rulebook = ch.rulebook AND a.item = ch.item
    CROSS JOIN LATERAL (VALUES ('d', ch.due), ('m', date_trunc('month', ch.due)::date)) AS g(grain, day)
), standing_in AS (
    DELETE FROM pg_temp._fold_standing RETURNING *
), deltas AS (
    SELECT community, grain, day, worker_id, attended::int AS attendance, 0 AS reception, met_delta AS items_met,
           CASE WHEN attended THEN att_points ELSE 0 END AS attendance_points, 0::float8 AS reception_points,
           0::float8 AS award_points, points_delta AS quota_points
    FROM item_deltas WHERE attended OR met_delta <> 0 OR points_delta <> 0
    UNION ALL
    SELECT * FROM standing_in
), standings AS (
    INSERT INTO standing AS s ({_STANDING_COLUMNS})
    SELECT community, grain, day, worker_id, sum(attendance), sum(reception), sum(items_met),
           sum(attendance_points), sum(reception_points), sum(award_points), sum(quota_points)
    FROM deltas GROUP BY community, grain, day, worker_id
    ON CONFLICT (community, grain, day, worker_id) DO UPDATE SET
        attendance = s.attendance + EXCLUDED.attendance,
        reception = s.reception + EXCLUDED.reception,
        items_met = s.items_met + EXCLUDED.items_met,
        attendance_points = s.attendance_points + EXCLUDED.attendance_points,
        reception_points = s.reception_points + EXCLUDED.reception_points,
        award_points = s.award_points + EXCLUDED.award_points,
        quota_points = s.quota_points + EXCLUDED.quota_points
    RETURNING 1
), trained AS (
    INSERT INTO training_seen (community, year, training_id)
    SELECT * FROM unnest($13::text[], $14::int[], $15::text[]) ON CONFLICT DO NOTHING
    RETURNING community, year
), figs AS (
    INSERT INTO figures AS f (community, year, visits, trainings, surveys, surveyed_visited, surveyed_knows,
                              surveyed_satisfied)
    SELECT community, year, sum(visits), sum(trainings), sum(surveys), sum(visited), sum(knows), sum(satisfied)
    FROM (SELECT * FROM unnest({_unnest(5, "text int bigint int int int int int")})
              AS x(community, year, visits, trainings, surveys, visited, knows, satisfied)
          UNION ALL
          SELECT community, year, 0, count(*)::int, 0, 0, 0, 0 FROM trained GROUP BY community, year) AS y
    GROUP BY community, year
    ON CONFLICT (community, year) DO UPDATE SET
        visits = f.visits + EXCLUDED.visits, trainings = f.trainings + EXCLUDED.trainings,
        surveys = f.surveys + EXCLUDED.surveys, surveyed_visited = f.surveyed_visited + EXCLUDED.surveyed_visited,
        surveyed_knows = f.surveyed_knows + EXCLUDED.surveyed_knows,
        surveyed_satisfied = f.surveyed_satisfied + EXCLUDED.surveyed_satisfied
    RETURNING 1
), issue_in AS (
    DELETE FROM pg_temp._fold_issue RETURNING *
), issues AS (
    INSERT INTO issue AS i (community, issue_id, category, level, open)
    SELECT * FROM issue_in
    ON CONFLICT (community, issue_id) DO UPDATE SET
        category = coalesce(EXCLUDED.category, i.category),
        level = coalesce(EXCLUDED.level, i.level),
        open = coalesce(EXCLUDED.open, i.open)
    RETURNING 1
), books AS (
    INSERT INTO rulebook_use (community, rulebook, version)
    SELECT * FROM unnest($16::text[], $17::text[], $18::int[]) ON CONFLICT DO NOTHING
    RETURNING 1
)
SELECT (SELECT count(*) FROM changed) AS items"""


#: _Standing fields in the order of the FOLD statement's standing parameters.
_STANDING_DELTAS = (
    "attendance",
    "reception",
    "items_met",
    "attendance_points",
    "reception_points",
    "award_points",
    "quota_points",
)


class _Standing:
    """Deltas of one standing row (a worker's day or month)."""

    __slots__ = (
        "attendance",
        "attendance_points",
        "award_points",
        "items_met",
        "quota_points",
        "reception",
        "reception_points",
    )

    def __init__(self) -> None:
        self.attendance = 0
        self.reception = 0
        self.items_met = 0
        self.attendance_points = 0.0
        self.reception_points = 0.0
        self.award_points = 0.0
        self.quota_points = 0.0


class _Batch:
    """One batch of events, aggregated in memory before it is written."""

    def __init__(self, projection: ScoringProjection) -> None:
        self.rules = projection.rules
        #: item key → [num, den, item, period, day, rulebook] (the last four: what the row says about it)
        self.additive: dict[tuple[str, str, str, str], list[Any]] = {}
        #: item key → (the batch's values, item, period, day, rulebook)
        self.distinct: dict[tuple[str, str, str, str], tuple[set[str], Item, Period, DayInfo, Rulebook]] = {}
        self.standing: dict[tuple[str, str, date, str], _Standing] = {}
        self.visits: Counter[tuple[str, str]] = Counter()  # (community, year) → visits
        self.reception: Counter[tuple[str, str, str]] = Counter()  # (community, worker, day) → entries
        self.surveys: dict[tuple[str, str], list[int]] = {}
        self.trainings: set[tuple[str, int, str]] = set()
        self.household_ops: list[tuple[str, str, str, list[str]]] = []
        self.issues: dict[tuple[str, str], list[Any]] = {}
        self.communities: dict[str, tuple[Any, ...]] = {}
        self.roster: dict[tuple[str, str], tuple[Any, ...]] = {}
        self.closures: list[tuple[Any, ...]] = []
        self.quota_awards: list[tuple[Any, ...]] = []
        self.books_used: set[tuple[str, str, int]] = set()
        self.projection = projection
        self.plans = projection.plans

    # ------------------------------------------------------------ per event (hot path)

    def add(self, etype: str, community: str, occurred: str, data: dict[str, Any], seq: int) -> None:
        """Fold one decoded event (its type, community, ``occurred_at`` and ``data``) into the batch (no I/O)."""
        plan = self.plans.get((community, etype))
        if plan is None:
            plan = self.plans[(community, etype)] = self.projection.plan(community, etype)
        handler, sources, reception_points, book = plan
        day_key = occurred[:10] if occurred.endswith("+08:00") else local_day_key(occurred)
        if handler is not None:
            handler(self, community, day_key, etype, data, seq)
        today = None
        for s in sources:
            if not s.accept(data):
                continue
            worker = data.get(s.worker)
            if not worker:
                continue
            if s.when:
                info = day_info(local_day_key(data.get(s.when) or occurred))
            else:
                info = today = today or day_info(day_key)
            item = s.item
            period = info.periods[item.period]
            key = (community, worker, period.key, item.id)
            measure = s.measure
            if measure == "distinct":
                value = data.get(s.field)  # type: ignore[arg-type]
                if value is None:
                    continue
                seen = self.distinct.get(key)
                if seen is None:
                    self.distinct[key] = seen = (set(), item, period, info, book)
                seen[0].add(value.replace(SEP, " ") if type(value) is str else str(value))
                continue
            acc = self.additive.get(key)
            if acc is None:
                self.additive[key] = acc = [0.0, 0.0, item, period, info, book]
            if measure == "count":
                acc[0] += 1
            elif measure == "sum":
                acc[0] += float(data.get(s.field) or 0)  # type: ignore[arg-type]
            else:  # rate: a yes/no per event
                value = data.get(s.field)  # type: ignore[arg-type]
                yes = (value is not None and value >= s.at_least) if s.at_least is not None else bool(value)
                acc[0] += 1.0 if yes else 0.0
                acc[1] += 1
        if reception_points is not None:
            worker = data.get("worker_id")
            if worker:
                self.reception[(community, worker, day_key)] += 1

    def _standings(self, community: str, worker: str, day: date, month: date) -> tuple[_Standing, _Standing]:
        out = []
        for key in ((community, "d", day, worker), (community, "m", month, worker)):
            row = self.standing.get(key)
            if row is None:
                self.standing[key] = row = _Standing()
            out.append(row)
        return out[0], out[1]

    def _community(self, community: str, day_key: str, etype: str, d: dict[str, Any], seq: int) -> None:
        self.communities[community] = (community, d.get("name"), d.get("street"), d.get("district"), d.get("city"))

    def _worker(self, community: str, day_key: str, etype: str, d: dict[str, Any], seq: int) -> None:
        day = date.fromisoformat(day_key)
        self.roster[(community, d["worker_id"])] = (
            community,
            d["worker_id"],
            d.get("name"),
            d.get("role") or "grid_worker",
            d.get("grid_id"),
            day,
        )

    def _household(self, community: str, day_key: str, etype: str, d: dict[str, Any], seq: int) -> None:
        self.household_ops.append((community, d["household_id"], etype, list(d.get("fields_present") or ())))

    def _visit(self, community: str, day_key: str, etype: str, d: dict[str, Any], seq: int) -> None:
        self.visits[(community, day_key[:4])] += 1

    def _training(self, community: str, day_key: str, etype: str, d: dict[str, Any], seq: int) -> None:
        self.trainings.add((community, int(day_key[:4]), d["training_id"]))

    def _survey(self, community: str, day_key: str, etype: str, d: dict[str, Any], seq: int) -> None:
        book = self.rules.for_community(community)
        key = (community, day_key[:4])
        acc = self.surveys.get(key)
        if acc is None:
            self.surveys[key] = acc = [0, 0, 0, 0]
        acc[0] += 1
        acc[1] += bool(d.get("visited"))
        acc[2] += bool(d.get("knows_grid_worker"))
        acc[3] += int(d.get("satisfaction", 0)) >= book.figures.satisfied_at_least

    def _issue(self, community: str, day_key: str, etype: str, d: dict[str, Any], seq: int) -> None:
        key = (community, d["issue_id"])
        state = self.issues.get(key)
        if state is None:
            self.issues[key] = state = [None, None, None]  # category, level, open (None: unchanged)
        if etype == "IssueReported":
            state[0], state[1], state[2] = d.get("category"), d.get("level") or "building", True
        elif etype == "IssueEscalated":
            state[1] = d.get("to_level")
            if d.get("category") and state[0] is None:
                state[0] = d["category"]
        elif etype == "IssueReopened":
            state[2] = True
        else:  # resolved, closed, merged into another
            state[2] = False

    def _closed(self, community: str, day_key: str, etype: str, d: dict[str, Any], seq: int) -> None:
        items = [{k: i.get(k) for k in ("item", "target", "actual", "met", "points")} for i in d["items"]]
        self.closures.append(
            (
                community,
                d["worker_id"],
                d["period_key"],
                d["period"],
                int(d.get("revision", 1)),
                json.dumps(items),
                float(d["points"]),
                d["rulebook"],
                int(d["rulebook_version"]),
                seq,
            )
        )

    def _awarded(self, community: str, day_key: str, etype: str, d: dict[str, Any], seq: int) -> None:
        kind = d.get("kind") or "award"
        if kind == "quota":
            # Bookkeeping only: quota points already count live, from the items themselves.
            self.quota_awards.append(
                (community, d["worker_id"], d.get("period_key"), float(d["points"]), int(d.get("revision") or 1))
            )
            return
        book = self.rules.for_community(community)
        info = day_info(day_key)
        for row in self._standings(community, d["worker_id"], info.day, info.month_start):
            row.award_points += float(d["points"]) * book.evaluation.award_weight

    # ------------------------------------------------------------ per batch (one statement per table)

    def prepare(self, seq: int) -> _Batch:
        """Turn the batch into rows to COPY and FOLD's parameters (CPU only); ``seq``: its last stream sequence."""
        self.seq = seq
        self.add_rows = self._item_rows(self.additive, False)
        self.dist_rows = self._item_rows(self.distinct, True)
        for (community, worker, day_key), n in self.reception.items():
            points = self.rules.for_community(community).evaluation.reception_points
            info = day_info(day_key)
            for row in self._standings(community, worker, info.day, info.month_start):
                row.reception += n
                row.reception_points += n * points
        self.standing_rows = [
            (
                *k,
                r.attendance,
                r.reception,
                r.items_met,
                r.attendance_points,
                r.reception_points,
                r.award_points,
                r.quota_points,
            )
            for k, r in self.standing.items()
        ]
        self.issue_rows = [(*k, *v) for k, v in self.issues.items()]
        self.params = self._fold_params(seq)
        return self

    async def write(self, conn: Conn) -> None:
        """Write the prepared batch: the rare directory changes first, then everything else in one statement."""
        seq = self.seq
        await conn.execute(STAGING)
        if self.communities:
            await conn.executemany(
                """INSERT INTO community (community, name, street, district, city) VALUES ($1, $2, $3, $4, $5)
                   ON CONFLICT (community) DO UPDATE SET name = EXCLUDED.name, street = EXCLUDED.street,
                       district = EXCLUDED.district, city = EXCLUDED.city""",
                list(self.communities.values()),
            )
        if self.roster:
            await conn.executemany(
                """INSERT INTO roster (community, worker_id, name, role, grid_id, registered_on)
                   VALUES ($1, $2, $3, $4, $5, $6)
                   ON CONFLICT (community, worker_id) DO UPDATE SET name = EXCLUDED.name, role = EXCLUDED.role,
                       grid_id = EXCLUDED.grid_id,
                       registered_on = LEAST(roster.registered_on, EXCLUDED.registered_on)""",
                list(self.roster.values()),
            )
        if self.household_ops:
            await self._write_households(conn)
        for table, rows in (
            ("_fold_add", self.add_rows),
            ("_fold_dist", self.dist_rows),
            ("_fold_standing", self.standing_rows),
            ("_fold_issue", self.issue_rows),
        ):
            if rows:
                await conn.copy_records_to_table(table, records=rows, schema_name="pg_temp")
        await conn.execute(FOLD, *self.params)
        if self.closures:
            await conn.executemany(
                """INSERT INTO closure (community, worker_id, period_key, period, revision, items, points, rulebook,
                                        rulebook_version, closed_seq, changed_seq)
                   VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8, $9, $10, $11)
                   ON CONFLICT (community, worker_id, period_key) DO UPDATE SET
                       period = EXCLUDED.period, revision = EXCLUDED.revision, items = EXCLUDED.items,
                       points = EXCLUDED.points, rulebook = EXCLUDED.rulebook,
                       rulebook_version = EXCLUDED.rulebook_version, closed_seq = EXCLUDED.closed_seq,
                       changed_seq = EXCLUDED.changed_seq
                   WHERE closure.revision < EXCLUDED.revision""",
                [(*c, seq) for c in self.closures],
            )
        if self.quota_awards:
            await conn.executemany(
                """UPDATE closure SET awarded_points = awarded_points + $4,
                       awarded_revision = GREATEST(awarded_revision, $5)
                   WHERE community = $1 AND worker_id = $2 AND period_key = $3""",
                self.quota_awards,
            )

    def _item_rows(self, values: dict[Any, Any], distinct: bool) -> list[tuple[Any, ...]]:
        """The rows of ``_fold_add`` (``distinct``: of ``_fold_dist``) for the batch's items."""
        rows: list[tuple[Any, ...]] = []
        append = rows.append
        used = self.books_used
        for key, value in values.items():
            item, period, info, book = value[-4:]
            used.add((key[0], book.id, book.version))
            target = item.target if period.kind != "day" or info.workday else None
            head = (*key, period.kind, period.due)
            tail = (target, item.points, item.divisor, item.measure == "rate", item.indicator, book.id, book.version)
            if distinct:
                append((*head, SEP.join(value[0]), *tail))
            else:
                append((*head, value[0], value[1], *tail))
        return rows

    def _fold_params(self, seq: int) -> list[Any]:
        """FOLD's parameters: the batch's sequence, then the small sets (attendance, figures, trainings, books)."""
        books = {b.id: b for b in self.rules.books.values()}
        params: list[Any] = [
            seq,
            list(books),
            [b.evaluation.attendance_item for b in books.values()],
            [b.evaluation.attendance_points for b in books.values()],
        ]
        fig_keys = list(set(self.visits) | set(self.surveys))
        surveys = [self.surveys.get(k, (0, 0, 0, 0)) for k in fig_keys]
        params += [
            [k[0] for k in fig_keys],
            [int(k[1]) for k in fig_keys],
            [self.visits.get(k, 0) for k in fig_keys],
            [0] * len(fig_keys),
            *([s[j] for s in surveys] for j in range(4)),
        ]
        trainings = list(self.trainings)
        params += [[t[j] for t in trainings] for j in range(3)]
        used = list(self.books_used)
        params += [[u[j] for u in used] for j in range(3)]
        return params

    async def _write_households(self, conn: Conn) -> None:
        touched = list({(c, h) for c, h, _op, _f in self.household_ops})
        await conn.copy_records_to_table("_fold_household_key", records=touched, schema_name="pg_temp")
        rows = await conn.fetch(
            """WITH k AS (DELETE FROM pg_temp._fold_household_key RETURNING *)
               SELECT h.community, h.household_id, h.fields, h.filled, h.complete
               FROM household h JOIN k USING (community, household_id)"""
        )
        before: dict[tuple[str, str], tuple[list[str], int, bool]] = {(r[0], r[1]): (r[2], r[3], r[4]) for r in rows}
        fields: dict[tuple[str, str], list[str]] = {k: list(v[0]) for k, v in before.items()}
        for community, household, op, present in self.household_ops:
            key = (community, household)
            if op == "ResidentDataErased":
                personal = set(self.rules.for_community(community).figures.ledger_personal_fields)
                fields[key] = [f for f in fields.get(key, []) if f not in personal]
            else:  # registered or updated: fields_present is the household's full list after the change
                fields[key] = present
        out: list[tuple[str, str, str, int, bool]] = []
        ledger: dict[str, list[int]] = {}
        required_of: dict[str, frozenset[str]] = {}
        for (community, household), present in fields.items():
            required = required_of.get(community)
            if required is None:
                required = required_of[community] = frozenset(
                    self.rules.for_community(community).figures.ledger_required_fields
                )
            filled = len(required.intersection(present))
            complete = filled == len(required)
            old = before.get((community, household))
            delta = ledger.setdefault(community, [0, 0, 0])
            delta[0] += 0 if old else 1
            delta[1] += int(complete) - int(old[2] if old else False)
            delta[2] += filled - (old[1] if old else 0)
            out.append((community, household, SEP.join(present), filled, complete))
        await conn.copy_records_to_table("_fold_household", records=out, schema_name="pg_temp")
        await conn.execute(
            """WITH u AS (DELETE FROM pg_temp._fold_household RETURNING *)
               INSERT INTO household (community, household_id, fields, filled, complete)
               SELECT community, household_id,
                      CASE WHEN fields = '' THEN '{}'::text[] ELSE string_to_array(fields, E'\\x1f') END,
                      filled, complete
               FROM u
               ON CONFLICT (community, household_id) DO UPDATE SET fields = EXCLUDED.fields,
                   filled = EXCLUDED.filled, complete = EXCLUDED.complete"""
        )
        await conn.executemany(
            """INSERT INTO ledger AS l (community, households, complete, filled) VALUES ($1, $2, $3, $4)
               ON CONFLICT (community) DO UPDATE SET households = l.households + EXCLUDED.households,
                   complete = l.complete + EXCLUDED.complete, filled = l.filled + EXCLUDED.filled""",
            [(c, *d) for c, d in ledger.items()],
        )


#: Event type → what the batch does with it besides the rulebook's evidence (figures, roster, closing).
HANDLERS: dict[str, Callable[..., None]] = {
    "CommunityRegistered": _Batch._community,
    "WorkerRegistered": _Batch._worker,
    "HouseholdRegistered": _Batch._household,
    "HouseholdProfileUpdated": _Batch._household,
    "ResidentDataErased": _Batch._household,
    "VisitLogged": _Batch._visit,
    "TrainingAttended": _Batch._training,
    "ResidentSurveyed": _Batch._survey,
    "IssueReported": _Batch._issue,
    "IssueEscalated": _Batch._issue,
    "IssueResolved": _Batch._issue,
    "IssueClosed": _Batch._issue,
    "IssueMerged": _Batch._issue,
    "IssueReopened": _Batch._issue,
    "QuotaPeriodClosed": _Batch._closed,
    "PointsAwarded": _Batch._awarded,
}
Plan = tuple[Callable[..., None] | None, tuple[Source, ...], float | None, Rulebook]


class ScoringProjection:
    """The scoring read model (see the module docstring).  ``rules`` decide what counts."""

    name = "scoring"
    replay_batch = 50_000  # `gridwork replay scoring` folds in batches this large (fastest here; 10k: -25 %)

    def __init__(self, rules: RuleSet | Callable[[], RuleSet] | None = None) -> None:
        # Rules may be given lazily, so a module-level instance reads no files at import time.
        self._rules: RuleSet | None = rules if isinstance(rules, RuleSet) else None
        self._load = rules if callable(rules) else None
        self.plans: dict[tuple[str, str], Plan] = {}

    def plan(self, community: str, etype: str) -> Plan:
        """What folding one event type means in one community (under its rulebook), worked out once."""
        book = self.rules.for_community(community)
        reception = book.evaluation.reception_points if etype in book.evaluation.reception_events else None
        return HANDLERS.get(etype), tuple(self.rules.sources[book.id].get(etype, ())), reception, book

    @property
    def rules(self) -> RuleSet:
        if self._rules is None:
            if self._load is not None:
                self._rules = self._load()
            else:
                from .settings import ScoringSettings

                self._rules = ScoringSettings().rules()
        return self._rules

    @property
    def event_types(self) -> tuple[str, ...]:
        return tuple(sorted(set(BASE_EVENT_TYPES) | self.rules.event_types()))

    ddl = DDL

    def fold_batch(self, events: Sequence[StoredEvent]) -> _Batch:
        """Decode and aggregate ``events`` in memory, ready to write (no I/O)."""
        batch = _Batch(self)
        add = batch.add
        for e in events:
            subject = e.subject
            first = subject.find(".") + 1
            etype = subject[subject.rfind(".") + 1 :]
            occurred, data = _decode(e.data)
            add(etype, subject[first : subject.find(".", first)], occurred, data, e.seq)
        return batch.prepare(events[-1].seq)

    async def apply(self, conn: Conn, events: Sequence[StoredEvent]) -> None:
        """Fold a batch: decode, aggregate in memory, write in one statement (plus rare directory ones)."""
        await self.fold_batch(events).write(conn)

    # A replay (shared.projection.replay) stages the next batch while the last one is written.

    async def stage(self, events: Sequence[StoredEvent]) -> _Batch:
        """:meth:`fold_batch` in slices, giving the event loop a turn between them (the write in flight)."""
        if len(events) <= STAGE_SLICE:
            return self.fold_batch(events)
        batch = _Batch(self)
        add = batch.add
        for i in range(0, len(events), STAGE_SLICE):
            for e in events[i : i + STAGE_SLICE]:
                subject = e.subject
                first = subject.find(".") + 1
                occurred, data = _decode(e.data)
                add(subject[subject.rfind(".") + 1 :], subject[first : subject.find(".", first)], occurred, data, e.seq)
            await asyncio.sleep(0)
        return batch.prepare(events[-1].seq)

    async def write(self, conn: Conn, staged: _Batch) -> None:
        await staged.write(conn)


STAGE_SLICE = 2000
_ENVELOPE_DATA = b',"data":{'
_OCCURRED = b'"occurred_at":"'


def _decode(raw: bytes) -> tuple[str, dict[str, Any]]:
    """(``occurred_at``, ``data``) of a stored event, parsing only the ``data`` object (Rust JSON parser).

    Stored events are compact JSON from pydantic: scalar envelope fields, then ``data`` last, so
    the first ``,"data":{`` is the payload's start (a ``"`` inside a string is always escaped).
    Anything else is parsed whole.
    """
    at = raw.find(_OCCURRED)
    start = raw.find(_ENVELOPE_DATA, at)
    if 0 < at < start and raw[-1:] == b"}":
        end = raw.find(b'"', at + 15)
        try:
            return raw[at + 15 : end].decode(), from_json(raw[start + 8 : -1], cache_strings="keys")
        except ValueError:
            pass
    whole = json.loads(raw)
    return whole["occurred_at"], whole["data"]
