"""The four real cases: night-time noise, stairwell clutter, pet conflicts, public-area planning."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from shared.events import now

from .base import DemoBase
from .community import COMMUNITY, Worker


class FourCases(DemoBase):
    """The four real cases of DOMAIN.md, through the issues and notify APIs."""

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
                        "assignee_id": "zhongnanlu-police",
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
                ("accept", {}, "secretary"),
                ("assign", {"assignee_kind": "worker", "assignee_id": w09.worker_id, "note": "phase 3"}, "secretary"),
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
                "issue_id": f"is-case-{key}-{when:%m%d}",
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
                headers = self.token("agency", agency="zhongnanlu-police", agency_kind="police")
            elif who == "agency-property":
                headers = self.token("agency", agency="bairuijing-property", agency_kind="property_management")
            elif who == "secretary":
                headers = self.token("secretary")
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
        agency = self.token("agency", agency="zhongnanlu-police", agency_kind="police")

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
