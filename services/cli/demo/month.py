"""Playing the month: each worker's day of 5+1 work, synced as a phone would."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timedelta
from typing import Any

import chinese_calendar

from shared.events import SHANGHAI

from .base import DemoBase
from .community import COMMUNITY, SMALL_PROBLEMS, Worker


class Month(DemoBase):
    """Plays each worker's day as the field app would sync it."""

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
