"""The scoring read model's tables and the statement that folds a batch into them (``FOLD``)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import NamedTuple

from ..domain.formula import FormulaOperations, item_formula

SCHEMA = "proj_scoring"
SEP = "\x1f"  # joins a batch's distinct values into one text parameter per row

#: Events the figures, the roster and the closing bookkeeping read (the rulebooks add theirs).
BASE_EVENT_TYPES = (
    "CommunityRegistered",
    "CommunityMoved",
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


class _SqlOperations:
    """The item formula's operations as SQL text over ``quota_item``'s columns (each result parenthesised)."""

    zero = "0"

    def ratio(self, num: str, den: str) -> str:
        return f"(CASE WHEN {den} > 0 THEN {num} / {den} ELSE 0 END)"

    def quotient(self, num: str, divisor: str) -> str:
        return f"({num} / {divisor})"

    def choose(self, condition: str, then: str, otherwise: str) -> str:
        return f"(CASE WHEN {condition} THEN {then} ELSE {otherwise} END)"

    def reached(self, actual: str, target: str) -> str:
        return f"({target} IS NOT NULL AND {actual} >= {target})"


#: :func:`item_formula` rendered as SQL: ``quota_item``'s generated columns.
SQL_OPERATIONS: FormulaOperations[str] = _SqlOperations()
ACTUAL_SQL, MET_SQL, POINTS_SQL = item_formula(
    SQL_OPERATIONS, num="num", den="den", divisor="divisor", rate="rate", target="target", points="points_if_met"
)

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
    actual           float8  GENERATED ALWAYS AS {ACTUAL_SQL} STORED,
    met              boolean GENERATED ALWAYS AS {MET_SQL} STORED,
    points           float8  GENERATED ALWAYS AS {POINTS_SQL} STORED,
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
    attendance_points  numeric NOT NULL DEFAULT 0,
    reception_points   numeric NOT NULL DEFAULT 0,
    award_points       numeric NOT NULL DEFAULT 0,
    quota_points       numeric NOT NULL DEFAULT 0,
    PRIMARY KEY (community, grain, day, worker_id)
) WITH (fillfactor = 80);
-- Points are exact (#15 item 20): standings add up numeric deltas, each rounded to 6 decimals, so
-- the sum does not depend on how the events were batched (a float8 sum drifted: 86.89999999999974
-- live against 86.9 replayed, and equal scores ranked apart).  A schema made before: converted once.
DO $$
BEGIN
    IF (SELECT data_type FROM information_schema.columns
        WHERE table_schema = current_schema() AND table_name = 'standing' AND column_name = 'quota_points')
       = 'double precision' THEN
        ALTER TABLE standing
            ALTER COLUMN attendance_points TYPE numeric USING round(attendance_points::numeric, 6),
            ALTER COLUMN reception_points TYPE numeric USING round(reception_points::numeric, 6),
            ALTER COLUMN award_points TYPE numeric USING round(award_points::numeric, 6),
            ALTER COLUMN quota_points TYPE numeric USING round(quota_points::numeric, 6);
    END IF;
END $$;
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
    attendance integer, reception integer, items_met integer, attendance_points numeric, reception_points numeric,
    award_points numeric, quota_points numeric) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS _fold_issue (community text, issue_id text, category text, level text, open boolean)
    ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS _fold_household_key (community text, household_id text) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS _fold_household (community text, household_id text, fields text, filled integer,
    complete boolean) ON COMMIT DELETE ROWS;
"""


class FoldParameters(NamedTuple):
    """FOLD's parameters, in order (``$1``, ``$2``…): the batch's last stream sequence, then the
    batch's small row sets, one array per column.  FOLD names each (``{param.seq}``), the call passes
    them in order (``conn.execute(FOLD, *parameters)``)."""

    seq: int
    # the attendance item of every rulebook, and the points an attended day earns
    attendance_rulebook: list[str]
    attendance_item: list[str]
    attendance_points: list[float]
    # the figures' increments per community and year
    figure_community: list[str]
    figure_year: list[int]
    figure_visits: list[int]
    figure_trainings: list[int]  # always 0 here: trainings are counted from the `trained` rows FOLD inserts
    figure_surveys: list[int]
    figure_visited: list[int]
    figure_knows: list[int]
    figure_satisfied: list[int]
    # training sessions seen (counted once per community and year, however many attended)
    training_community: list[str]
    training_year: list[int]
    training_id: list[str]
    # the rulebook versions that scored the batch's rows, per community
    used_community: list[str]
    used_rulebook: list[str]
    used_version: list[int]


#: FOLD's placeholder of each parameter by name: ``param.seq`` is ``$1``.
param = SimpleNamespace(**{name: f"${i}" for i, name in enumerate(FoldParameters._fields, start=1)})

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
           indicator, rulebook, rulebook_version, {param.seq}::bigint
    FROM add_in
    ON CONFLICT (community, worker_id, period_key, item) DO UPDATE SET {_ITEM_SETS},
        num = q.num + EXCLUDED.num, den = q.den + EXCLUDED.den
    {_RETURNING}
), dist_in AS (
    DELETE FROM pg_temp._fold_dist RETURNING *
), dist_rows AS (
    INSERT INTO quota_item AS q ({_ITEM_COLUMNS}, vals, changed_seq)
    SELECT community, worker_id, period_key, item, period, due, cardinality(v), 0, target, points_if_met, divisor,
           rate, indicator, rulebook, rulebook_version, v, {param.seq}::bigint
    FROM (SELECT t.*, string_to_array(t.vals, E'\\x1f') AS v FROM dist_in AS t) AS u
    ON CONFLICT (community, worker_id, period_key, item) DO UPDATE SET {_ITEM_SETS},
        vals = q.vals || ARRAY(SELECT x FROM unnest(EXCLUDED.vals) AS x WHERE x <> ALL (q.vals)),
        num = q.num + (SELECT count(*) FROM unnest(EXCLUDED.vals) AS x WHERE x <> ALL (q.vals))
    WHERE NOT (EXCLUDED.vals <@ q.vals)
    {_RETURNING}
), changed AS (
    SELECT * FROM add_rows UNION ALL SELECT * FROM dist_rows
), marks AS (
    UPDATE closure AS c SET changed_seq = {param.seq}
    FROM (SELECT DISTINCT community, worker_id, period_key FROM changed) AS u
    WHERE c.community = u.community AND c.worker_id = u.worker_id AND c.period_key = u.period_key
    RETURNING 1
), attendance AS (
    SELECT * FROM unnest({param.attendance_rulebook}::text[], {param.attendance_item}::text[],
                         {param.attendance_points}::float8[]) AS a(rulebook, item, points)
), item_deltas AS (
    SELECT ch.community, g.grain, g.day, ch.worker_id,
           (a.points IS NOT NULL AND ch.target IS NOT NULL AND coalesce(ch.prev_num, 0) = 0 AND ch.num > 0)
               AS attended,
           CASE WHEN ch.indicator THEN 0 ELSE ch.met::int - coalesce(ch.prev_met, false)::int END AS met_delta,
           round(ch.points::numeric, 6) - round(coalesce(ch.prev_points, 0)::numeric, 6) AS points_delta,
           round(coalesce(a.points, 0)::numeric, 6) AS att_points
    FROM changed AS ch
    LEFT JOIN attendance AS a ON a.rulebook = ch.rulebook AND a.item = ch.item
    CROSS JOIN LATERAL (VALUES ('d', ch.due), ('m', date_trunc('month', ch.due)::date)) AS g(grain, day)
), standing_in AS (
    DELETE FROM pg_temp._fold_standing RETURNING *
), deltas AS (
    SELECT community, grain, day, worker_id, attended::int AS attendance, 0 AS reception, met_delta AS items_met,
           CASE WHEN attended THEN att_points ELSE 0 END AS attendance_points, 0::numeric AS reception_points,
           0::numeric AS award_points, points_delta AS quota_points
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
    SELECT * FROM unnest({param.training_community}::text[], {param.training_year}::int[],
                         {param.training_id}::text[])
    ON CONFLICT DO NOTHING
    RETURNING community, year
), figs AS (
    INSERT INTO figures AS f (community, year, visits, trainings, surveys, surveyed_visited, surveyed_knows,
                              surveyed_satisfied)
    SELECT community, year, sum(visits), sum(trainings), sum(surveys), sum(visited), sum(knows), sum(satisfied)
    FROM (SELECT * FROM unnest({param.figure_community}::text[], {param.figure_year}::int[],
                               {param.figure_visits}::bigint[], {param.figure_trainings}::int[],
                               {param.figure_surveys}::int[], {param.figure_visited}::int[],
                               {param.figure_knows}::int[], {param.figure_satisfied}::int[])
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
    SELECT * FROM unnest({param.used_community}::text[], {param.used_rulebook}::text[], {param.used_version}::int[])
    ON CONFLICT DO NOTHING
    RETURNING 1
)
SELECT (SELECT count(*) FROM changed) AS items"""
