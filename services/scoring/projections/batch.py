"""One batch of the scoring fold: events decoded and aggregated in memory, then written at once.

Per event (the hot path) :meth:`FoldBatch.add` only touches dictionaries: the rulebook's evidence
into item numbers, the reception log, the figures, the directory.  Per batch :meth:`FoldBatch.prepare`
turns them into rows and :meth:`FoldBatch.write` COPies the big row sets into staging tables and
runs ``FOLD`` once (plus a statement or two for rare directory events and scoring's own closures).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from shared.db import Conn
from shared.events import shanghai_day_key

from ..domain import Item, Rulebook, Source
from ..domain.calendar import DayInfo, Period, day_info
from .schema import FOLD, SEP, STAGING, FoldParameters

if TYPE_CHECKING:
    from .fold import ScoringProjection


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
        self.attendance_points = ZERO
        self.reception_points = ZERO
        self.award_points = ZERO
        self.quota_points = ZERO


ZERO = Decimal(0)


def exact(x: float) -> Decimal:
    """A rulebook's or an event's points as the decimal they were written as (0.1 is 0.1, not
    0.1000000000000000055…), rounded to 6 places like the standings' deltas in FOLD."""
    return round(Decimal(repr(float(x))), 6)


class FoldBatch:
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
        day_key = shanghai_day_key(occurred)
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
                info = day_info(shanghai_day_key(data.get(s.when) or occurred))
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
            row.award_points += round(exact(d["points"]) * exact(book.evaluation.award_weight), 6)

    # ------------------------------------------------------------ per batch (one statement per table)

    def prepare(self, seq: int) -> FoldBatch:
        """Turn the batch into rows to COPY and FOLD's parameters (CPU only); ``seq``: its last stream sequence."""
        self.seq = seq
        self.add_rows = self._item_rows(self.additive, False)
        self.dist_rows = self._item_rows(self.distinct, True)
        for (community, worker, day_key), n in self.reception.items():
            points = self.rules.for_community(community).evaluation.reception_points
            info = day_info(day_key)
            for row in self._standings(community, worker, info.day, info.month_start):
                row.reception += n
                row.reception_points += n * exact(points)
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

    def _fold_params(self, seq: int) -> FoldParameters:
        """FOLD's parameters: the batch's sequence, then the small sets (attendance, figures, trainings, books)."""
        books = {b.id: b for b in self.rules.books.values()}
        fig_keys = list(set(self.visits) | set(self.surveys))
        surveys = [self.surveys.get(k, (0, 0, 0, 0)) for k in fig_keys]
        trainings = list(self.trainings)
        used = list(self.books_used)
        return FoldParameters(
            seq=seq,
            attendance_rulebook=list(books),
            attendance_item=[b.evaluation.attendance_item for b in books.values()],
            attendance_points=[b.evaluation.attendance_points for b in books.values()],
            figure_community=[k[0] for k in fig_keys],
            figure_year=[int(k[1]) for k in fig_keys],
            figure_visits=[self.visits.get(k, 0) for k in fig_keys],
            figure_trainings=[0] * len(fig_keys),
            figure_surveys=[s[0] for s in surveys],
            figure_visited=[s[1] for s in surveys],
            figure_knows=[s[2] for s in surveys],
            figure_satisfied=[s[3] for s in surveys],
            training_community=[t[0] for t in trainings],
            training_year=[t[1] for t in trainings],
            training_id=[t[2] for t in trainings],
            used_community=[u[0] for u in used],
            used_rulebook=[u[1] for u in used],
            used_version=[u[2] for u in used],
        )

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
    "CommunityRegistered": FoldBatch._community,
    "CommunityMoved": FoldBatch._community,
    "WorkerRegistered": FoldBatch._worker,
    "HouseholdRegistered": FoldBatch._household,
    "HouseholdProfileUpdated": FoldBatch._household,
    "ResidentDataErased": FoldBatch._household,
    "VisitLogged": FoldBatch._visit,
    "TrainingAttended": FoldBatch._training,
    "ResidentSurveyed": FoldBatch._survey,
    "IssueReported": FoldBatch._issue,
    "IssueEscalated": FoldBatch._issue,
    "IssueResolved": FoldBatch._issue,
    "IssueClosed": FoldBatch._issue,
    "IssueMerged": FoldBatch._issue,
    "IssueReopened": FoldBatch._issue,
    "QuotaPeriodClosed": FoldBatch._closed,
    "PointsAwarded": FoldBatch._awarded,
}
Plan = tuple[Callable[..., None] | None, tuple[Source, ...], float | None, Rulebook]
