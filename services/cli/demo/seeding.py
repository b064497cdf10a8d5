"""Seeding Bairuijing through the public APIs: the directory and the ledger the workload generator
makes of it (as ``gridwork simulate --via api`` seeds a community), then the notify directory."""

from __future__ import annotations

from rich.progress import Progress

from shared.events import Event

from .base import DemoBase
from .community import COMMUNITY, WEBHOOK_SECRETS, WECOM_KEYS


class Seeding(DemoBase):
    """Seeds the community: buildings, workers, grids, people, the ledger, and the notify directory."""

    async def seed_community(self, directory: list[Event], progress: Progress) -> None:
        """``directory``: the generator's setup events for Bairuijing."""
        task = progress.add_task("seeding Bairuijing", total=3)
        await self.seed(directory)  # the community, buildings, workers, grids, people, then the ledger
        self.refuse_rejections("seeding Bairuijing")
        progress.advance(task)
        sec = self.token("secretary")
        total = len(self.rows)

        async def households_known() -> bool:
            info = await self.call("GET", "visits", f"/v1/communities/{COMMUNITY}", headers=sec)
            return bool(info["households"] >= total)

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
