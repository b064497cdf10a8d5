"""Seeding Bairuijing through the public APIs: the directory, the ledger, the people."""

from __future__ import annotations

import asyncio

from rich.progress import Progress

from services.cli.workload import ledger_csv

from .base import DemoBase
from .community import COMMUNITY, STREET, UNITS, WEBHOOK_SECRETS, WECOM_KEYS


class Seeding(DemoBase):
    """Seeds the community: buildings, workers, grids, the ledger, people and the directory."""

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
