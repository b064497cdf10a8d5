"""Bairuijing as the demo plays it: the community the workload generator makes of it
(:func:`services.cli.workload.bairuijing`), its workers as the four cases address them, and the
plan — what each worker did on each day, folded from the events the demo played — that the board
is checked against."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import chinese_calendar

from services.cli.workload import BAIRUIJING, Community
from shared.events import Event, shanghai_day

COMMUNITY = BAIRUIJING
WEBHOOK_SECRETS = {"police-duty": "demo-police-duty-secret-0001", "urban": "demo-urban-management-secret-01"}
WECOM_KEYS = {"property": "demo-wuye-robot-key", "street": "demo-street-robot-key", "secretary": "demo-shuji-key"}
SMS_TOKEN = "demo-sms-token"


# ------------------------------------------------------------------------------------- the plan


@dataclass
class Worker:
    worker_id: str
    name: str
    grid_id: str
    buildings: list[str]
    households: list[str] = field(default_factory=list)
    special: list[str] = field(default_factory=list)
    profile: str = "full"  # full: every quota; partial: misses some; weak: misses most


def workers_of(c: Community) -> list[Worker]:
    """The community's grid workers: grid, buildings, households, special-assistance households, profile."""
    return [
        Worker(
            worker_id=w,
            name=c.worker_name[w],
            grid_id=c.grid_of_worker[w],
            buildings=c.buildings_of(w),
            households=list(c.households_of_worker[w]),
            special=[h for h in c.households_of_worker[w] if h in c.special],
            profile=c.profile_of.get(w, "full"),
        )
        for w in c.workers
    ]


@dataclass
class DayWork:
    """What one worker did on one day (what the board must show)."""

    households: set[str] = field(default_factory=set)
    minutes: int = 0
    special_visits: int = 0
    problems: int = 0
    visits: int = 0  # household contacts (person-times)


@dataclass
class MonthPlan:
    """The demo's month: who did what, folded from the events the demo played (:meth:`fold`), to
    check the board against."""

    days: list[date]
    workers: list[Worker]
    work: dict[tuple[str, date], DayWork] = field(default_factory=dict)
    visits: int = 0  # household contacts (person-times)
    surveys: int = 0

    def day(self, worker: str, day: date) -> DayWork:
        return self.work.setdefault((worker, day), DayWork())

    def fold(self, events: Iterable[Event]) -> None:
        """Add what the played events say each worker did, on the day the work happened, as the
        scoring service counts the daily items: hours on the day the shift started, distinct
        households contacted, special-assistance visits, and problems reported (a problem noted on a
        visit, a session or a council is filed as the worker's issue)."""
        for e in events:
            d: Any = e.data
            on = shanghai_day(e.occurred_at)
            if e.type == "ShiftEnded":
                self.day(d.worker_id, shanghai_day(d.started_at)).minutes += d.minutes
            elif e.type == "VisitLogged":
                work = self.day(d.worker_id, on)
                if d.outcome != "not_home":
                    work.households.add(d.household_id)
                    work.special_visits += 1 if d.special_assistance else 0
                work.problems += len(d.problems)
                work.visits += 1
                self.visits += 1
            elif e.type in ("FaceToFaceSessionHeld", "BuildingCouncilHeld"):
                self.day(d.worker_id, on).problems += len(d.problems)
            elif e.type == "IssueReported" and d.source == "grid_worker":
                self.day(d.reported_by, on).problems += 1
            elif e.type == "ResidentSurveyed":
                self.surveys += 1


def working_days(days: list[date]) -> list[date]:
    return [d for d in days if chinese_calendar.is_workday(d)]


def demo_window(days: int | None, today: date) -> list[date]:
    """The played days: the previous calendar month, or the ``days`` days ending yesterday."""
    if days:
        return [today - timedelta(days=n) for n in range(days, 0, -1)]
    first_this = today.replace(day=1)
    last_prev = first_this - timedelta(days=1)
    first_prev = last_prev.replace(day=1)
    return [first_prev + timedelta(days=n) for n in range((last_prev - first_prev).days + 1)]
