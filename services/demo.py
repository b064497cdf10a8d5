"""``gridwork demo``: a month in Bairuijing (百瑞景社区), played through the public HTTP APIs.

It starts the stack (``gridwork up``), seeds the community as DOMAIN.md describes it — 25 grid
workers plus the secretary and deputy, four phases of buildings, thousands of households with
special-assistance, elderly-alone and young residents, party members, the building leader, and a
directory of property management, the police station and the street office pointing at local
receivers the demo starts — then plays a month of work as field apps and the hotline would:
shifts, knocks in the three modes, special visits, Friday sessions, a building council, a
training, surveys, small problems in all five categories, volunteer service for points, hotline
work orders, and the four real cases with their escalations and deliveries.

Some workers do all their quotas, some miss some, so the board shows a real ranking.  What the
demo did is kept as a :class:`Plan`, so a test can check the board against it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import io
import random
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import chinese_calendar
import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from services.notify.receiver import LocalReceiver, Received
from shared.auth import mint_token
from shared.embedded import free_port
from shared.events import SHANGHAI, now
from shared.settings import Settings

COMMUNITY = "bairuijing"
STREET = "zhongnanlu"
PHASES, BUILDINGS_PER_PHASE, UNITS, FLOORS = 4, 20, 4, 18
WORKERS = 25
WEBHOOK_SECRETS = {"police-duty": "demo-police-duty-secret-0001", "urban": "demo-urban-management-secret-01"}
WECOM_KEYS = {"property": "demo-wuye-robot-key", "street": "demo-street-robot-key", "secretary": "demo-shuji-key"}
SMS_TOKEN = "demo-sms-token"
SURNAMES = "张王李赵刘陈杨黄周吴徐孙马朱胡郭何高林罗郑梁谢宋唐"
GIVEN = [
    "敏",
    "静",
    "丽",
    "强",
    "磊",
    "军",
    "洋",
    "勇",
    "艳",
    "杰",
    "娟",
    "涛",
    "明",
    "超",
    "秀英",
    "华",
    "平",
    "刚",
    "桂英",
    "玲",
    "芳",
    "伟",
    "娜",
    "霞",
    "鹏",
]
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


def id_number(rng: random.Random) -> str:
    """A well-formed 18-character resident ID number (GB 11643 check character) for Wuhan, Wuchang."""
    birth = date(1935, 1, 1) + timedelta(days=rng.randint(0, 365 * 70))
    body = f"420106{birth:%Y%m%d}{rng.randint(0, 999):03d}"
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    check = "10X98765432"[sum(int(c) * w for c, w in zip(body, weights, strict=True)) % 11]
    return body + check


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


def ledger_csv(rows: list[dict[str, str]]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


# ------------------------------------------------------------------------------------- API helpers


class ApiPlayer:
    """A client of the running services' public HTTP APIs, as the demo and ``gridwork simulate --via api``
    use them: tokens minted with the stack's secret, calls that fail loudly, waiting for the
    projections to catch up, and issue lifecycle steps that survive a rule or timer moving the issue."""

    def __init__(
        self, settings: Settings, services: dict[str, str], community: str = COMMUNITY, connections: int = 32
    ) -> None:
        self.settings = settings
        self.urls = services
        self.community = community
        self.http = httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=connections))

    def token(self, role: str, **scope: Any) -> dict[str, str]:
        """An Authorization header for ``role``; community roles default to the player's community."""
        if role in ("secretary", "grid_worker", "agency") and "community" not in scope:
            scope["community"] = self.community
        token = mint_token(self.settings, role=role, **scope)
        return {"Authorization": f"Bearer {token}"}

    #: Every write the player sends is idempotent (client ids, issue ids, order ids, PUTs), so a request
    #: whose answer was lost — a dropped connection, a 503 with Retry-After while the broker elects a
    #: leader — is sent again, as a field app resends; at most this many times.
    RESENDS = 5

    async def send(self, method: str, url: str, **kw: Any) -> httpx.Response:
        """One request, resent after a transport failure or a 503 (honouring its Retry-After)."""
        for attempt in range(self.RESENDS + 1):
            last = attempt == self.RESENDS
            try:
                r = await self.http.request(method, url, **kw)
            except httpx.TransportError:
                if last:
                    raise
                await asyncio.sleep(min(2.0, 0.1 * 2**attempt))
                continue
            if r.status_code != 503 or last:
                return r
            await asyncio.sleep(min(5.0, float(r.headers.get("retry-after") or 1)))
        raise AssertionError("unreachable")

    async def call(
        self,
        method: str,
        service: str,
        path: str,
        *,
        ok: tuple[int, ...] = (200, 201),
        headers: dict[str, str] | None = None,
        **kw: Any,
    ) -> Any:
        r = await self.send(method, self.urls[service] + path, headers=headers, **kw)
        if r.status_code not in ok:
            raise RuntimeError(f"{method} {service}{path} → {r.status_code}: {r.text[:500]}")
        return r.json() if r.content and r.headers.get("content-type", "").startswith("application/json") else r

    async def wait(self, check: Any, what: str, timeout: float = 120) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = await check()
            if got:
                return got
            await asyncio.sleep(0.2)
        raise RuntimeError(f"timed out waiting for {what}")

    async def settle(self, timeout: float = 300) -> None:
        """Wait until every service's projections have folded everything and every outbox (notify's
        deliveries, the hotline's feedback) has delivered or given up what it owes now.

        Settled means two readings in a row with nothing owed and no projection moved between them:
        a reaction folded in one service may append an event that another service then owes."""
        last: list[Any] = []

        async def reading() -> list[Any] | None:
            seen: list[Any] = []
            for name, url in sorted(self.urls.items()):
                r = await self.http.get(f"{url}/readyz")
                body = r.json()
                if r.status_code != 200:
                    return None
                for p in body.get("projections", []):
                    if "error" in p or p.get("lag_events", 0):
                        return None
                    seen.append((name, p["projection"], p["checkpoint"]))
                for o in body.get("outboxes", []):
                    if "error" in o or o.get("pending", 0):
                        return None
            return seen

        async def quiet() -> bool:
            nonlocal last
            now_seen = await reading()
            settled = now_seen is not None and now_seen == last
            last = now_seen or []
            return settled

        await self.wait(quiet, "projections and outboxes to settle", timeout=timeout)

    async def advance(
        self,
        issue: str,
        action: str,
        headers: dict[str, str],
        version: int,
        *,
        community: str | None = None,
        **body: Any,
    ) -> int:
        """One lifecycle step; when a rule or a timer moved the issue meanwhile (409), re-read and retry."""
        path = f"/v1/communities/{community or self.community}/issues/{issue}"
        for _attempt in range(10):
            r = await self.send(
                "POST", f"{self.urls['issues']}{path}/{action}", headers=headers, json={"version": version, **body}
            )
            if r.status_code in (200, 201):
                return int(r.json()["version"])
            if r.status_code != 409 or r.json()["error"].get("code") == "illegal_transition":
                raise RuntimeError(f"{action} {issue} → {r.status_code}: {r.text[:300]}")
            version = (await self.call("GET", "issues", path, headers=headers))["issue"]["version"]
        raise RuntimeError(f"{action} {issue}: the version kept moving")

    async def close(self) -> None:
        await self.http.aclose()


# ------------------------------------------------------------------------------------- the demo


class Demo(ApiPlayer):
    """Seeds Bairuijing and plays the month against running services."""

    def __init__(
        self,
        settings: Settings,
        services: dict[str, str],
        receiver: LocalReceiver,
        days: list[date],
        households: int,
        seed: int = 7,
        console: Console | None = None,
    ) -> None:
        super().__init__(settings, services, COMMUNITY)
        self.receiver = receiver
        self.console = console or Console()
        self.seed = seed
        self.rng = random.Random(seed)
        workers, self.rows, tags = build_community(households, seed)
        self.plan = Plan(days=days, workers=workers, tags=tags)
        self.escalated: list[dict[str, Any]] = []

    # -------------------------------------------------------------------------- helpers

    def worker_token(self, w: Worker) -> dict[str, str]:
        return self.token("grid_worker", worker_id=w.worker_id, grid=w.grid_id, sub=w.worker_id)

    # -------------------------------------------------------------------------- seeding

    async def seed_community(self, progress: Progress) -> None:
        task = progress.add_task("seeding Bairuijing", total=6)
        ops, sec = self.token("ops"), self.token("secretary")
        await self.call(
            "PUT",
            "visits",
            f"/v1/communities/{COMMUNITY}",
            headers=ops,
            json={"name": "百瑞景社区", "street": STREET, "district": "武昌区", "city": "武汉市", "residents": 25799},
        )
        progress.advance(task)

        async def building(b: str) -> None:
            await self.call(
                "PUT",
                "visits",
                f"/v1/communities/{COMMUNITY}/buildings/{b}",
                headers=sec,
                json={"compound": "百瑞景", "phase": b[1], "number": str(int(b[3:])), "units": UNITS},
            )

        await asyncio.gather(*(building(b) for w in self.plan.workers for b in w.buildings))
        progress.advance(task)
        for w in self.plan.workers:
            await self.call(
                "PUT",
                "visits",
                f"/v1/communities/{COMMUNITY}/workers/{w.worker_id}",
                headers=sec,
                json={"name": w.name, "role": "grid_worker", "grid_id": w.grid_id, "street": STREET},
            )
            await self.call(
                "PUT",
                "visits",
                f"/v1/communities/{COMMUNITY}/grids/{w.grid_id}",
                headers=sec,
                json={"name": f"第{int(w.grid_id[1:])}网格", "worker_id": w.worker_id, "buildings": w.buildings},
            )
        for wid, name, role in (("shuji", "百瑞景社区书记", "secretary"), ("fushuji", "副书记", "deputy_secretary")):
            await self.call(
                "PUT",
                "visits",
                f"/v1/communities/{COMMUNITY}/workers/{wid}",
                headers=sec,
                json={"name": name, "role": role, "street": STREET},
            )
        progress.advance(task)
        persons = [
            (f"pm{i:02d}", "sinking_party_member" if i % 2 else "direct_party_member", None) for i in range(1, 21)
        ]
        persons += [
            ("uncle-zhang", "building_leader", "p4b04"),
            ("rb01", "resident_backbone", "p2b06"),
            ("rb02", "resident_backbone", "p4b04"),
            ("vol01", "volunteer", "p3b02"),
        ]
        for pid, role, b in persons:
            await self.call(
                "PUT",
                "visits",
                f"/v1/communities/{COMMUNITY}/persons/{pid}",
                headers=sec,
                json={"role": role, "building_id": b, "display_name": pid},
            )
        progress.advance(task)
        report = await self.call(
            "POST",
            "visits",
            f"/v1/communities/{COMMUNITY}/ledger/import",
            headers=sec,
            files={"file": ("bairuijing-ledger.csv", ledger_csv(self.rows), "text/csv")},
        )
        self.import_report = report
        total = len(self.rows)

        async def households_known() -> bool:
            info = await self.call("GET", "visits", f"/v1/communities/{COMMUNITY}", headers=sec)
            return info["households"] >= total

        await self.wait(households_known, "the ledger in the directory")
        progress.advance(task)
        await self.seed_directory(sec)
        progress.advance(task)

    async def seed_directory(self, sec: dict[str, str]) -> None:
        r = self.receiver.url
        directory = {
            "police-duty": {
                "kind": "police",
                "desk": "duty_line",
                "name": "中南路派出所值班室",
                "agency": "zhongnanlu-police",
                "channels": {
                    "webhook": {"url": f"{r}/webhook/police-duty", "secret": WEBHOOK_SECRETS["police-duty"]},
                    "sms": {"number": "+862787001110"},
                },
            },
            "police-officer": {
                "kind": "police",
                "desk": "community_officer",
                "name": "社区民警",
                "agency": "zhongnanlu-police",
                "channels": {"webhook": {"url": f"{r}/webhook/police-duty", "secret": WEBHOOK_SECRETS["police-duty"]}},
            },
            "property": {
                "kind": "property_management",
                "name": "百瑞景物业服务中心",
                "agency": "bairuijing-property",
                "channels": {"wecom": {"url": f"{r}/wecom/send?key={WECOM_KEYS['property']}"}},
            },
            "street-office": {
                "kind": "street_office",
                "name": "中南路街道办",
                "agency": "zhongnanlu-street",
                "channels": {"wecom": {"url": f"{r}/wecom/send?key={WECOM_KEYS['street']}"}},
            },
            "urban": {
                "kind": "urban_management",
                "name": "武昌区城管",
                "agency": "wuchang-urban",
                "channels": {"webhook": {"url": f"{r}/webhook/urban", "secret": WEBHOOK_SECRETS["urban"]}},
            },
            "secretary": {
                "kind": "secretary",
                "name": "百瑞景社区书记",
                "channels": {"wecom": {"url": f"{r}/wecom/send?key={WECOM_KEYS['secretary']}"}},
            },
        }
        for rid, body in directory.items():
            await self.call("PUT", "notify", f"/v1/communities/{COMMUNITY}/recipients/{rid}", headers=sec, json=body)

    # -------------------------------------------------------------------------- a day's work

    def day_records(self, w: Worker, day: date, index: int) -> list[dict[str, Any]]:
        """The phone's records for one worker and one working day (what it syncs)."""
        rng, plan = self.rng, self.plan
        work = plan.day(w.worker_id, day)
        tag = day.strftime("%m%d")
        full, partial = w.profile == "full", w.profile == "partial"
        contacts = 6 if full else (5 if partial and index % 3 else 4) if partial else 3
        hours = 5.5 if full else (5.0 if index % 2 else 4.5) if partial else 4.0
        start = datetime.combine(day, datetime.min.time(), SHANGHAI).replace(hour=8, minute=30)
        records: list[dict[str, Any]] = [
            {
                "client_id": f"{w.worker_id}-s{tag}",
                "kind": "shift_started",
                "occurred_at": start.isoformat(),
                "data": {},
            }
        ]
        chosen = rng.sample(w.households, min(contacts, len(w.households)))
        for k, hid in enumerate(chosen):
            tags = plan.tags.get(hid, [])
            mode = "priority" if "elderly_alone" in tags else ("online" if "young" in tags else "regular")
            records.append(
                {
                    "client_id": f"{w.worker_id}-v{tag}-{k}",
                    "kind": "visit",
                    "occurred_at": (start + timedelta(minutes=20 + 40 * k)).isoformat(),
                    "data": {"household_id": hid, "mode": mode, "minutes": rng.randint(8, 30)},
                }
            )
            work.households.add(hid)
            work.special_visits += 1 if tags and tags[0] in ("elderly_alone", "special_assistance") else 0
        if w.special and (full or (partial and index % 3 != 2)):
            hid = rng.choice(w.special)
            records.append(
                {
                    "client_id": f"{w.worker_id}-sp{tag}",
                    "kind": "visit",
                    "occurred_at": (start + timedelta(hours=hours - 1)).isoformat(),
                    "data": {
                        "household_id": hid,
                        "mode": "priority",
                        "minutes": 30,
                        "notes": "weekly check on a special-assistance household",
                    },
                }
            )
            work.households.add(hid)
            work.special_visits += 1
        records.append(
            {
                "client_id": f"{w.worker_id}-e{tag}",
                "kind": "shift_ended",
                "occurred_at": (start + timedelta(hours=hours)).isoformat(),
                "data": {"shift_id": f"{w.worker_id}-s{tag}"},
            }
        )
        work.minutes += round(hours * 60)
        plan.visits += len(records) - 2
        if day.weekday() == 4:  # Friday: residents face-to-face at the service station
            party = ["pm01"] if full or (partial and index % 2) else []
            records.append(
                {
                    "client_id": f"{w.worker_id}-f{tag}",
                    "kind": "face_to_face_session",
                    "occurred_at": start.replace(hour=15).isoformat(),
                    "data": {
                        "station": "百瑞景党群服务驿站",
                        "party_members_present": party,
                        "residents_attending": rng.randint(6, 25),
                        "topics": ["public-area rules", "dog-walking times"],
                    },
                }
            )
            if party:
                plan.sessions_counting[w.worker_id] = plan.sessions_counting.get(w.worker_id, 0) + 1
        if day.weekday() == 3:  # Thursday: survey a few households (awareness, satisfaction)
            for k, hid in enumerate(rng.sample(w.households, min(3, len(w.households)))):
                records.append(
                    {
                        "client_id": f"{w.worker_id}-q{tag}-{k}",
                        "kind": "resident_surveyed",
                        "occurred_at": start.replace(hour=16).isoformat(),
                        "data": {
                            "household_id": hid,
                            "visited": True,
                            "knows_grid_worker": rng.random() < (0.95 if full else 0.7),
                            "satisfaction": rng.choice((5, 5, 4, 4, 3) if full else (4, 3, 3, 2)),
                        },
                    }
                )
                plan.surveys += 1
        return records

    async def play_day(self, day: date, index: int, special_days: dict[str, date]) -> None:
        workday = chinese_calendar.is_workday(day)
        if workday:
            await asyncio.gather(*(self.work_day(w, day, index, special_days) for w in self.plan.workers))

    async def work_day(self, w: Worker, day: date, index: int, special_days: dict[str, date]) -> None:
        headers = self.worker_token(w)
        records = self.day_records(w, day, index)
        start = datetime.combine(day, datetime.min.time(), SHANGHAI).replace(hour=9)
        if day == special_days["council"] and w.profile != "weak":
            records.append(
                {
                    "client_id": f"{w.worker_id}-council",
                    "kind": "building_council",
                    "occurred_at": start.replace(hour=19).isoformat(),
                    "data": {
                        "building_id": w.buildings[0],
                        "party_members": ["pm02", "pm03"],
                        "resident_backbones": ["rb01"],
                        "attendees": 14,
                        "decisions": ["staggered dog-walking times", "keep stairwells clear"],
                    },
                }
            )
        if day == special_days["training"] and w.profile != "weak":
            records.append(
                {
                    "client_id": f"{w.worker_id}-training",
                    "kind": "training_attended",
                    "occurred_at": start.replace(hour=14).isoformat(),
                    "data": {
                        "training_id": f"tr-{day:%Y%m%d}",
                        "organiser": "中南路街道",
                        "title": "Role-play: pet owner, property management, lawyer",
                    },
                }
            )
            self.plan.trainings += 1
        if w.profile == "full" and day in special_days["befriend"]:
            records.append(
                {
                    "client_id": f"{w.worker_id}-fr{day:%m%d}",
                    "kind": "resident_befriended",
                    "occurred_at": start.replace(hour=17).isoformat(),
                    "data": {"household_id": self.rng.choice(w.households)},
                }
            )
        answer = await self.call(
            "POST",
            "visits",
            f"/v1/communities/{COMMUNITY}/sync",
            headers=headers,
            json={"device_id": f"phone-{w.worker_id}", "records": records},
        )
        if answer["rejected"]:
            bad = [r for r in answer["results"] if r["status"] == "rejected"]
            raise RuntimeError(f"sync of {w.worker_id} on {day} rejected {bad[:3]}")
        # The small problem of the day: reported and solved on the spot (daily "1 small problem").
        due = {"full": True, "partial": index % 2 == 0, "weak": index % 4 == 0}[w.profile]
        if due:
            n = self.plan.day(w.worker_id, day)
            category, sub, text = SMALL_PROBLEMS[index % len(SMALL_PROBLEMS)]
            out = await self.call(
                "POST",
                "issues",
                f"/v1/communities/{COMMUNITY}/issues",
                headers=headers,
                json={
                    "issue_id": f"{w.worker_id}-{day:%m%d}-sp",
                    "category": category,
                    "subcategory": sub,
                    "severity": "low",
                    "place": {"compound": "百瑞景", "phase": w.buildings[0][1], "building": w.buildings[0]},
                    "description": text,
                    "occurred_at": start.replace(hour=10).isoformat(),
                },
            )
            issue, version = out["issue"]["issue_id"], int(out.get("version", out["issue"].get("version", 1)))
            # Solved on the spot: taken on, handled by the worker, checked with the residents, closed.
            version = await self.advance(issue, "accept", headers, version)
            version = await self.advance(
                issue, "assign", headers, version, assignee_kind="worker", assignee_id=w.worker_id
            )
            version = await self.advance(
                issue, "resolve", headers, version, resolution="handled on the spot with the residents"
            )
            version = await self.advance(issue, "verify", headers, version, satisfied=True, satisfaction=5)
            await self.advance(issue, "close", headers, version)
            n.problems += 1

    # -------------------------------------------------------------------------- the four cases

    async def four_cases(self) -> dict[str, str]:
        """The four real cases of DOMAIN.md, this week, through the issues and notify APIs."""
        w05 = next(w for w in self.plan.workers if w.worker_id == "w05")
        w12 = next(w for w in self.plan.workers if w.worker_id == "w12")
        out: dict[str, str] = {}
        moment = now()
        last_night = moment.replace(hour=23, minute=30, second=0, microsecond=0)
        if last_night > moment:
            last_night -= timedelta(days=1)
        # 1. Night-time noise (phase 2 east grid): to the police, who go with the grid worker.
        noise = await self.report(
            w05,
            "noise",
            "conflicts_disputes",
            "noise",
            "high",
            "p2b06",
            "a resident shouts into a microphone late at night for work; neighbours above and below complain",
            last_night,
        )
        out["night-time noise"] = noise
        self.plan.day(w05.worker_id, last_night.date()).problems += 1
        await self.wait_escalated(noise)
        await self.lifecycle(
            noise,
            w05,
            [
                ("accept", {}),
                (
                    "assign",
                    {
                        "assignee_kind": "police",
                        "assignee_id": "officer-wang",
                        "note": "the grid worker goes with the community police officer",
                    },
                ),
                (
                    "resolve",
                    {
                        "resolution": "explained the Noise Pollution Prevention and Control Law; "
                        "the resident agreed to install soundproofing"
                    },
                    "agency",
                ),
                ("verify", {"satisfied": True, "satisfaction": 5, "note": "quiet nights since"}),
                ("close", {}),
            ],
        )
        # 2. Stairwell clutter (phase 4, building 4): property management, back again, then the building.
        clutter = await self.report(
            w12,
            "clutter",
            "safety_hazards",
            "stairwell_clutter",
            "medium",
            "p4b04",
            "boxes, bikes and old furniture in the stairwell: a fire risk",
            moment - timedelta(hours=6),
        )
        out["stairwell clutter"] = clutter
        self.plan.day(w12.worker_id, (moment - timedelta(hours=6)).date()).problems += 1
        await self.wait_escalated(clutter)
        steps: list[tuple[Any, ...]] = [("accept", {})]
        for round_ in (1, 2):  # property management cleaned it many times, and it came back
            steps += [
                ("assign", {"assignee_kind": "property_management", "assignee_id": "bairuijing-property"}),
                ("resolve", {"resolution": f"stairwell cleaned (round {round_})"}, "agency-property"),
                ("verify", {"satisfied": False, "satisfaction": 1, "note": "the clutter is back"}),
            ]
        steps += [
            (
                "assign",
                {
                    "assignee_kind": "building_leader",
                    "assignee_id": "uncle-zhang",
                    "note": "rallied party members and volunteers in the building group chat",
                },
            ),
            (
                "assign",
                {
                    "assignee_kind": "volunteer_team",
                    "assignee_id": "p4b04-patrol",
                    "note": "the residents' patrol reports in real time",
                },
            ),
            (
                "resolve",
                {
                    "resolution": "knocked on every door to find the owners; cleared with the "
                    "building leader, party members and volunteers; cleared dynamically"
                },
            ),
            ("verify", {"satisfied": True, "satisfaction": 5}),
            ("close", {}),
        ]
        await self.lifecycle(clutter, w12, steps)
        # 3. Pet conflicts: a hotline work order, staggered dog-walking and volunteer service for points.
        order = f"GD{moment:%Y%m%d}0042"
        await self.call(
            "POST",
            "issues",
            f"/v1/communities/{COMMUNITY}/hotline/orders",
            headers=self.token("hotline"),
            json={
                "order_no": order,
                "request": "dogs off the lead in phase 3 frighten the children",
                "category": "conflicts_disputes",
                "subcategory": "pets",
                "place": {"compound": "百瑞景", "phase": "3", "building": "p3b02"},
                "response_deadline": (moment + timedelta(hours=2)).isoformat(),
                "resolution_deadline": (moment + timedelta(days=3)).isoformat(),
            },
        )
        pets = f"hl-{order}"
        out["pet conflicts (12345)"] = pets
        w09 = next(w for w in self.plan.workers if w.worker_id == "w09")
        await self.lifecycle(
            pets,
            w09,
            [
                ("accept", {}),
                (
                    "assign",
                    {
                        "assignee_kind": "volunteer_team",
                        "assignee_id": "dog-walking-volunteers",
                        "note": "staggered dog-walking times agreed after the role-play training",
                    },
                ),
                (
                    "resolve",
                    {"resolution": "staggered dog-walking times; volunteers keep the lawn; points for service"},
                ),
            ],
        )
        resident = next(h for h in w09.households)
        for k in range(3):
            await self.call(
                "POST",
                "visits",
                f"/v1/communities/{COMMUNITY}/volunteer-services",
                headers=self.worker_token(w09),
                json={
                    "service_id": f"dogwalk-{moment:%m%d}-{k}",
                    "household_id": resident,
                    "activity": "dog-walking patrol (staggered times)",
                    "hours": 2,
                    "occurred_at": (moment - timedelta(days=3 - k)).isoformat(),
                },
            )
        await self.call(
            "POST",
            "visits",
            f"/v1/communities/{COMMUNITY}/volunteer-redemptions",
            headers=self.worker_token(w09),
            json={
                "redemption_id": f"redeem-{moment:%m%d}",
                "household_id": resident,
                "points": 30,
                "item": "pet waste bags and a leash",
            },
        )
        await self.call(
            "POST",
            "issues",
            f"/v1/communities/{COMMUNITY}/hotline/orders/{order}/callback",
            headers=self.token("hotline"),
            json={"satisfied": True, "satisfaction": 5},
        )
        # 4. Public-area planning: a questionnaire in one building, then a building council meeting.
        w14 = next(w for w in self.plan.workers if w.worker_id == "w14")
        council = f"council-planning-{moment:%m%d}"
        await self.call(
            "POST",
            "visits",
            f"/v1/communities/{COMMUNITY}/building-councils",
            headers=self.worker_token(w14),
            json={
                "council_id": council,
                "building_id": w14.buildings[0],
                "party_members": ["pm04", "pm05"],
                "resident_backbones": ["rb01", "rb02"],
                "attendees": 23,
                "occurred_at": (moment - timedelta(hours=3)).isoformat(),
                "decisions": ["tried the public-area rules in one building first"],
                "problems": [
                    {
                        "category": "public_facilities",
                        "subcategory": "facilities",
                        "severity": "medium",
                        "description": "public-area rules for the compound: bicycles, drying racks and the lawn",
                    }
                ],
            },
        )
        out["public-area planning"] = f"{council}-p0"
        self.plan.day(w14.worker_id, (moment - timedelta(hours=3)).date()).problems += 1
        await self.wait(lambda: self.exists(f"{council}-p0"), "the council's problem filed as an issue")
        # The police acknowledge the duty-line escalation through the agency API.
        self.police_ack = await self.acknowledge("police-duty", noise)
        return out

    async def report(
        self, w: Worker, key: str, category: str, sub: str, severity: str, building: str, text: str, when: datetime
    ) -> str:
        out = await self.call(
            "POST",
            "issues",
            f"/v1/communities/{COMMUNITY}/issues",
            headers=self.worker_token(w),
            json={
                "issue_id": f"case-{key}-{when:%m%d}",
                "category": category,
                "subcategory": sub,
                "severity": severity,
                "description": text,
                "occurred_at": when.isoformat(),
                "place": {"compound": "百瑞景", "phase": building[1], "building": building},
            },
        )
        return str(out["issue"]["issue_id"])

    async def exists(self, issue: str) -> bool:
        r = await self.http.get(
            f"{self.urls['issues']}/v1/communities/{COMMUNITY}/issues/{issue}", headers=self.token("secretary")
        )
        return r.status_code == 200

    async def wait_escalated(self, issue: str) -> dict[str, Any]:
        async def found() -> Any:
            r = await self.http.get(
                f"{self.urls['issues']}/v1/communities/{COMMUNITY}/issues/{issue}", headers=self.token("secretary")
            )
            return r.json() if r.status_code == 200 and r.json()["issue"].get("target") else None

        return await self.wait(found, f"{issue} escalated")

    async def lifecycle(self, issue: str, w: Worker, steps: list[tuple[Any, ...]]) -> None:
        await self.wait(lambda: self.exists(issue), f"{issue} on the board")
        view = await self.call(
            "GET", "issues", f"/v1/communities/{COMMUNITY}/issues/{issue}", headers=self.token("secretary")
        )
        version = view["issue"]["version"]
        for step in steps:
            action, body = step[0], step[1]
            who = step[2] if len(step) > 2 else None
            if who == "agency":
                headers = self.token("agency", agency="zhongnanlu-police")
            elif who == "agency-property":
                headers = self.token("agency", agency="bairuijing-property")
            else:
                headers = self.worker_token(w)
            out = await self.call(
                "POST",
                "issues",
                f"/v1/communities/{COMMUNITY}/issues/{issue}/{action}",
                headers=headers,
                json={"version": version, **body},
            )
            version = out["version"]

    async def acknowledge(self, recipient: str, issue: str) -> str:
        """The police acknowledge their duty-line escalation through the agency API."""
        agency = self.token("agency", agency="zhongnanlu-police")

        async def notification() -> Any:
            r = await self.call(
                "GET",
                "notify",
                f"/v1/communities/{COMMUNITY}/notifications",
                headers=self.token("secretary"),
                params={"subject_ref": issue, "limit": 1000},
            )
            return [n for n in r["notifications"] if n["recipient_id"] == recipient and n["ack_id"]]

        found = await self.wait(notification, "the police notification")
        nid = found[0]["notification_id"]
        out = await self.call(
            "POST", "notify", f"/v1/communities/{COMMUNITY}/notifications/{nid}/ack", headers=agency, json={}
        )
        return str(out.get("state", out))

    # -------------------------------------------------------------------------- the whole run

    async def run(self) -> dict[str, Any]:
        days = self.plan.days
        work = working_days(days)
        special = {
            "council": work[min(len(work) - 1, 8)] if work else days[0],
            "training": work[min(len(work) - 1, 6)] if work else days[0],
            "befriend": set(work[2::5]),
        }
        started = time.perf_counter()
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=self.console) as progress:
            await self.seed_community(progress)
            task = progress.add_task(f"playing {days[0]:%Y-%m-%d} … {days[-1]:%Y-%m-%d}", total=len(days))
            index = 0
            for day in days:
                await self.play_day(day, index, special)
                index += 1 if chinese_calendar.is_workday(day) else 0
                progress.advance(task)
            cases = progress.add_task("the four cases, the hotline and the police", total=1)
            self.cases = await self.four_cases()
            progress.advance(cases)
            settle = progress.add_task("projections catching up", total=1)
            await self.settle()
            progress.advance(settle)
        self.seconds = time.perf_counter() - started
        return await self.results()

    async def results(self) -> dict[str, Any]:
        sec = self.token("secretary")
        month = self.plan.days[-1]
        board = await self.call(
            "GET",
            "scoring",
            f"/v1/communities/{COMMUNITY}/board",
            headers=sec,
            params={"period": f"{month:%Y-%m}", "as_of": month.isoformat()},
        )
        figures = await self.call(
            "GET", "scoring", f"/v1/communities/{COMMUNITY}/figures", headers=sec, params={"year": month.year}
        )
        notifications = await self.call(
            "GET", "notify", f"/v1/communities/{COMMUNITY}/notifications", headers=sec, params={"limit": 1000}
        )
        issues = await self.call(
            "GET", "issues", f"/v1/communities/{COMMUNITY}/issues", headers=sec, params={"limit": 500}
        )
        return {
            "board": board,
            "figures": figures,
            "notifications": notifications,
            "issues": issues,
            "received": list(self.receiver.received),
            "cases": self.cases,
        }


class DemoReceiver(LocalReceiver):
    """The far end of every channel, plus the 12345 hotline's feedback endpoint."""

    def _route(self, method: str, target: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        if method == "POST" and target.startswith("/hotline"):
            return self._accept(Received("/hotline", {}, headers, body, time.perf_counter()), {"ok": True})
        return super()._route(method, target, headers, body)


def demo_receiver(port: int = 0) -> DemoReceiver:
    return DemoReceiver(
        port=port,
        webhook_secrets={k: [v] for k, v in WEBHOOK_SECRETS.items()},
        wecom_keys=set(WECOM_KEYS.values()),
        sms_token=SMS_TOKEN,
    )


def demo_environment(receiver_port: int) -> dict[str, str]:
    """What the demo's services are told: the local receivers, and a window wide enough to replay a month."""
    base = f"http://127.0.0.1:{receiver_port}"
    return {
        "GRIDWORK_MAX_BACKDATE_DAYS": "62",  # the demo replays last month's phones
        "GRIDWORK_HOTLINE_CALLBACK_URL": f"{base}/hotline",
        "GRIDWORK_NOTIFY_SMS_GATEWAY_URL": f"{base}/sms",
        "GRIDWORK_NOTIFY_SMS_GATEWAY_TOKEN": SMS_TOKEN,
        # Closing periods runs on the live clock; the demo writes last month all at once, so it
        # would close each day before its work arrives.  The board shows the month as folded.
        "GRIDWORK_SCORING_CLOSE_INTERVAL_SECONDS": "0",
    }


# ------------------------------------------------------------------------------------- output


def print_results(console: Console, demo: Demo, out: dict[str, Any], endpoints: dict[str, Any]) -> None:
    board = out["board"]
    table = Table(title=f"百瑞景社区 — 5+1 board {board['period'].get('key', '')} (评优积分制)")
    for col in ("rank", "worker", "grid", "attendance", "quota items met", "completion", "points"):
        table.add_column(col, justify="right" if col not in ("worker", "grid") else "left")
    for n, w in enumerate(board["workers"], start=1):
        completion = w.get("completion")
        table.add_row(
            str(w.get("rank", n)),
            f"{w['worker_id']} {w.get('name') or ''}",
            w.get("grid_id") or "",
            f"{w['attendance_days']}/{w['working_days']}",
            f"{w['items_met']}/{w['items_due']}",
            f"{completion:.0%}" if completion is not None else "—",
            f"{w['total']:.1f}",
        )
    console.print(table)
    fig = out["figures"]
    figures = Table(title=f"The community's figures, {fig['year']}")
    figures.add_column("figure")
    figures.add_column("value", justify="right")
    figures.add_column("target", justify="right")
    figures.add_row("resident visits (person-times)", f"{fig['visits']['value']:,}", f"{fig['visits']['target']:,}")
    ledger = fig["ledger"]
    figures.add_row(
        "ledger completion (居民基础信息底册)",
        f"{ledger['completion']:.1%} of {ledger['households']:,}" if ledger["completion"] is not None else "—",
        f"> {ledger['target']:.0%}",
    )
    figures.add_row("grid-worker trainings", str(fig["trainings"]["value"]), str(fig["trainings"]["target"]))
    survey = fig["survey"]
    for key, label in (
        ("visit_rate", "visit rate (走访率)"),
        ("awareness_rate", "awareness rate (知晓率)"),
        ("satisfaction_rate", "satisfaction rate (满意率)"),
    ):
        figures.add_row(
            label, f"{survey[key]:.1%}" if survey.get(key) is not None else "—", f"{survey['surveys']} surveys"
        )
    figures.add_row(
        "open problems",
        str(fig["open_problems"]["total"]),
        ", ".join(f"{k} {v}" for k, v in sorted(fig["open_problems"]["by_level"].items())),
    )
    console.print(figures)
    rules: Counter[tuple[str, str, str]] = Counter()
    for n in out["notifications"]["notifications"]:
        rules[(n["rule"] or n["kind"], n["recipient_id"], n["state"])] += 1
    routed = Table(title="Notifications by routing rule (notify)")
    for col in ("rule", "recipient", "state", "count"):
        routed.add_column(col, justify="right" if col == "count" else "left")
    for (rule, recipient, state), count in sorted(rules.items()):
        routed.add_row(rule, recipient, state, str(count))
    console.print(routed)
    by_target: Counter[tuple[str, str]] = Counter()
    for r in out["received"]:
        by_target[(r.path.split("?")[0], r.query.get("key", ""))] += 1
    deliveries = Table(title="Escalations and where they went (received by the local endpoints)")
    deliveries.add_column("endpoint")
    deliveries.add_column("messages", justify="right")
    names = {v: k for k, v in WECOM_KEYS.items()}
    for (path, key), n in sorted(by_target.items()):
        deliveries.add_row(f"{path} {names.get(key, '')}".strip(), str(n))
    console.print(deliveries)
    cases = Table(title="The four cases")
    cases.add_column("case")
    cases.add_column("issue")
    for name, issue in out["cases"].items():
        cases.add_row(name, issue)
    console.print(cases)
    console.print(
        f"Played {len(demo.plan.days)} days ({len(working_days(demo.plan.days))} working days): "
        f"{demo.plan.visits:,} household contacts, {demo.plan.surveys} surveys, "
        f"{len(demo.rows):,} households imported, in {demo.seconds:.0f} s."
    )
    urls = Table(title="Running services")
    urls.add_column("service")
    urls.add_column("URL")
    for name, url in endpoints["services"].items():
        urls.add_row(name, f"{url}/docs")
    token = mint_token(demo.settings, role="secretary", community=COMMUNITY, ttl_seconds=7 * 86400)
    urls.add_row("board page", f"{endpoints['services']['scoring']}/board#community={COMMUNITY}&token={token}")
    urls.add_row("board (JSON)", f"{endpoints['services']['scoring']}/v1/communities/{COMMUNITY}/board")
    urls.add_row("board export", f"{endpoints['services']['scoring']}/v1/communities/{COMMUNITY}/board/export")
    console.print(urls)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.1%}" if value <= 1 else f"{value:,.1f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


async def play(
    settings: Settings,
    endpoints: dict[str, Any],
    receiver: DemoReceiver,
    days: list[date],
    households: int,
    seed: int,
    console: Console,
) -> tuple[Demo, dict[str, Any]]:
    """Seed and play against a running stack (the receiver already listening)."""
    demo = Demo(settings, endpoints["services"], receiver, days, households, seed, console)
    try:
        return demo, await demo.run()
    finally:
        await demo.close()


async def _demo_main(stack: Any, port: int, args: argparse.Namespace, console: Console) -> None:
    import signal

    receiver = demo_receiver(port)
    await receiver.start()  # the far end of every channel lives as long as the demo does
    try:
        endpoints = await asyncio.to_thread(stack.start, console.print)
        days = demo_window(args.days, now().date())
        demo, out = await play(stack.settings, endpoints, receiver, days, args.households, args.seed, console)
        print_results(console, demo, out, endpoints)
        if args.headless:
            return
        console.print("The stack keeps running (the local receivers too); Ctrl-C stops it.")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
            for name in stack.check():
                console.print(f"service {name} exited; see {stack.settings.data_dir / 'logs' / (name + '.log')}")
                stack.procs.pop(name, None)
    finally:
        await receiver.stop()


def cmd_demo(args: argparse.Namespace) -> int:
    """Start the stack, seed Bairuijing, play the month, print the board; keep running until Ctrl-C."""
    import os

    import uvloop

    from shared.commands import LocalStack, load_settings

    console = Console()
    data_dir = Path(args.data_dir or ".gridwork/demo")
    if data_dir.exists():
        shutil.rmtree(data_dir)  # the demo starts from an empty community every time
    port = free_port()
    os.environ.update(demo_environment(port))
    stack = LocalStack(load_settings(use_running_stack=False, data_dir=data_dir))
    try:
        uvloop.run(_demo_main(stack, port, args, console))
    finally:
        stack.stop(echo=console.print)
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    demo = commands.add_parser("demo", help="a month in Bairuijing on the embedded stack")
    demo.add_argument("--days", type=int, default=None, help="play the N days ending yesterday (default: last month)")
    demo.add_argument("--households", type=int, default=8000)
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--headless", action="store_true", help="stop after printing the board")
    demo.add_argument("--data-dir", help="default ./.gridwork/demo (wiped at start)")
    demo.set_defaults(handler=cmd_demo)
