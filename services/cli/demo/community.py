"""Bairuijing as the demo plays it: the community's shape, its workers and ledger, and the plan
(what each worker did on each day) that the board is checked against."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, timedelta

import chinese_calendar

from services.cli.workload import GIVEN, SURNAMES, id_number

COMMUNITY = "bairuijing"
STREET = "zhongnanlu"
PHASES, BUILDINGS_PER_PHASE, UNITS, FLOORS = 4, 20, 4, 18
WORKERS = 25
WEBHOOK_SECRETS = {"police-duty": "demo-police-duty-secret-0001", "urban": "demo-urban-management-secret-01"}
WECOM_KEYS = {"property": "demo-wuye-robot-key", "street": "demo-street-robot-key", "secretary": "demo-shuji-key"}
SMS_TOKEN = "demo-sms-token"
#: Small problems a diligent worker reports over a month: one in each of the five categories first.
SMALL_PROBLEMS = [
    ("public_facilities", "lighting", "stairwell light out on the 6th floor"),
    ("environmental_sanitation", "garbage", "overflowing bins behind the building"),
    ("safety_hazards", "fire_safety", "bicycles blocking the fire exit"),
    ("conflicts_disputes", "neighbour_dispute", "quarrel over a leaking air conditioner"),
    ("livelihood_services", "social_assistance", "elderly resident needs help applying for a subsidy"),
]


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


@dataclass
class DayWork:
    """What one worker did on one day (what the board must show)."""

    households: set[str] = field(default_factory=set)
    minutes: int = 0
    special_visits: int = 0
    problems: int = 0


@dataclass
class Plan:
    """The demo's month: who did what, kept to check the board against."""

    days: list[date]
    workers: list[Worker]
    tags: dict[str, list[str]]
    work: dict[tuple[str, date], DayWork] = field(default_factory=dict)
    sessions_counting: dict[str, int] = field(default_factory=dict)
    visits: int = 0
    trainings: int = 0
    surveys: int = 0

    def day(self, worker: str, day: date) -> DayWork:
        return self.work.setdefault((worker, day), DayWork())


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


def build_community(households: int, seed: int) -> tuple[list[Worker], list[dict[str, str]], dict[str, list[str]]]:
    """Workers with their grids, and the resident ledger as rows of the CSV a community keeps."""
    rng = random.Random(seed)
    buildings = [f"p{p}b{n:02d}" for p in range(1, PHASES + 1) for n in range(1, BUILDINGS_PER_PHASE + 1)]
    workers = []
    per = len(buildings) / WORKERS
    for i in range(WORKERS):
        mine = buildings[round(i * per) : round((i + 1) * per)]
        profile = "full" if i < 15 else ("partial" if i < 21 else "weak")
        workers.append(Worker(f"w{i + 1:02d}", SURNAMES[i] + GIVEN[i], f"g{i + 1:02d}", mine, profile=profile))
    owner = {b: w for w in workers for b in w.buildings}
    rows, tags_of = [], {}
    for n in range(households):
        b = buildings[n % len(buildings)]
        slot = n // len(buildings)
        unit, room = slot % UNITS + 1, f"{slot // UNITS % FLOORS + 1}{slot // (UNITS * FLOORS) % 4 + 1:02d}"
        hid = f"{b}-{unit}-{room}"
        x = rng.random()
        tags = ["elderly_alone"] if x < 0.08 else ["special_assistance"] if x < 0.14 else ["young"] if x < 0.69 else []
        complete = rng.random() < 0.93  # the ledger is a little over 90% complete
        rows.append(
            {
                "building": b,
                "unit": str(unit),
                "room": room,
                "name": SURNAMES[rng.randrange(len(SURNAMES))] + GIVEN[rng.randrange(len(GIVEN))],
                "phone": f"1{rng.choice('3589')}{rng.randint(0, 999999999):09d}",
                "id_number": id_number(rng) if complete else "",
                "address": f"百瑞景{b[1]}期{int(b[3:])}栋{unit}单元{room}",
                "members": str(rng.randint(1, 5)),
                "tags": ";".join(tags),
            }
        )
        tags_of[hid] = tags
        w = owner[b]
        w.households.append(hid)
        if tags and tags[0] in ("elderly_alone", "special_assistance"):
            w.special.append(hid)
    return workers, rows, tags_of
