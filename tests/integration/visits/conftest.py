"""The visits service running in-process on real NATS and PostgreSQL, seeded with Bairuijing.

Bairuijing (百瑞景社区, Zhongnan Road street): phase 4 east grid (w-07: buildings p4-b4, p4-b5) and
phase 2 east grid (w-02: building p2-b3), party members, a building leader, and three households —
an elderly resident living alone in 4-4, an ordinary family in 4-4 and the flat in 2-3 with the
late-night microphone.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from services.visits.app import build_app
from shared.events import SHANGHAI
from shared.settings import Settings
from tests.harness import auth, eventually, running

C = "bairuijing"
WAIT = 30.0


def ago(**delta: float) -> str:
    """An ISO time ``delta`` before now, in Shanghai time (what a phone sends)."""
    return (datetime.now(SHANGHAI) - timedelta(**delta)).isoformat()


@dataclass
class Field:
    """The service under test and the people who call it."""

    client: httpx.AsyncClient
    settings: Settings

    def url(self, path: str = "") -> str:
        return f"/v1/communities/{C}{path}"

    def token(self, role: str, **scope: Any) -> dict[str, str]:
        return auth(self.settings, role, **scope)

    @property
    def ops(self) -> dict[str, str]:
        return self.token("ops")

    @property
    def secretary(self) -> dict[str, str]:
        return self.token("secretary", community=C, sub="sec-liu")

    @property
    def w07(self) -> dict[str, str]:
        """Grid worker of phase 4 east."""
        return self.token("grid_worker", community=C, grid="g-p4-east", worker_id="w-07")

    @property
    def w02(self) -> dict[str, str]:
        """Grid worker of phase 2 east."""
        return self.token("grid_worker", community=C, grid="g-p2-east", worker_id="w-02")

    async def post(
        self,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        expect: int | tuple[int, ...] = (200, 201),
    ) -> Any:
        r = await self.client.post(self.url(path), json=body, headers=headers or self.w07)
        wanted = (expect,) if isinstance(expect, int) else expect
        assert r.status_code in wanted, r.text
        return r.json()

    async def put(
        self, path: str, body: Any, headers: dict[str, str] | None = None, expect: int | tuple[int, ...] = (200, 201)
    ) -> Any:
        r = await self.client.put(self.url(path), json=body, headers=headers or self.secretary)
        wanted = (expect,) if isinstance(expect, int) else expect
        assert r.status_code in wanted, r.text
        return r.json()

    async def get(self, path: str, headers: dict[str, str] | None = None, expect: int = 200, **params: Any) -> Any:
        r = await self.client.get(self.url(path), headers=headers or self.secretary, params=params)
        assert r.status_code == expect, r.text
        return r.json()

    async def household(self, household_id: str, headers: dict[str, str] | None = None, **params: Any) -> Any:
        return await self.get(f"/households/{household_id}", headers=headers, **params)

    async def wait_households(self, n: int) -> None:
        async def seen() -> bool:
            return len(await self.get("/households")) >= n

        await eventually(seen, timeout=WAIT, what=f"{n} households in the directory")


@pytest.fixture
async def field(settings: Settings) -> AsyncIterator[Field]:
    """The visits service with an empty directory."""
    async with running(build_app(settings)) as client:
        yield Field(client, settings)


async def seed(f: Field) -> None:
    """Register Bairuijing's people and places through the API."""
    await f.put(
        "",
        {
            "name": "百瑞景社区",
            "street": "zhongnanlu",
            "district": "wuchang",
            "city": "wuhan",
            "area_km2": 0.53,
            "residents": 25799,
        },
        headers=f.ops,
    )
    # Independent entries go in parallel (the order of grids and buildings does not matter).
    await asyncio.gather(
        *(
            f.put(f"/buildings/{b}", {"compound": "百瑞景", "phase": phase, "number": number, "units": 3})
            for b, phase, number in (("p4-b4", "4", "4"), ("p4-b5", "4", "5"), ("p2-b3", "2", "3"))
        ),
        f.put("/grids/g-p4-east", {"name": "四期东网格", "worker_id": "w-07", "buildings": ["p4-b4", "p4-b5"]}),
        f.put("/grids/g-p2-east", {"name": "二期东网格", "worker_id": "w-02", "buildings": ["p2-b3"]}),
        f.put("/workers/w-07", {"name": "李网格", "grid_id": "g-p4-east"}),
        f.put("/workers/w-02", {"name": "陈网格", "grid_id": "g-p2-east"}),
        f.put("/persons/pm-12", {"role": "sinking_party_member", "building_id": "p4-b4", "display_name": "刘党员"}),
        f.put("/persons/pm-13", {"role": "direct_party_member", "display_name": "赵党员"}),
        f.put("/persons/bl-1", {"role": "building_leader", "building_id": "p4-b4", "display_name": "张叔"}),
        f.put("/persons/rb-3", {"role": "resident_backbone", "building_id": "p4-b4"}),
    )
    await eventually(lambda: f.get("/buildings"), timeout=WAIT, what="buildings in the directory")

    async def buildings_have_grids() -> bool:
        return all(b["grid_id"] for b in await f.get("/buildings")) and len(await f.get("/buildings")) == 3

    await eventually(buildings_have_grids, timeout=WAIT, what="buildings in their grids")
    await f.post(
        "/households",
        {
            "household_id": "h-p4-b4-2-301",
            "building_id": "p4-b4",
            "unit": "2",
            "room": "301",
            "members": 1,
            "tags": ["elderly_alone"],
            "personal": {
                "name": "王秀英",
                "phone": "13907110000",
                "id_number": "42010619500101002X",
                "address": "百瑞景四期4栋2单元301",
            },
        },
        headers=f.secretary,
    )
    await f.post(
        "/households",
        {
            "household_id": "h-p4-b4-1-101",
            "building_id": "p4-b4",
            "unit": "1",
            "room": "101",
            "personal": {"name": "周建国"},
        },
        headers=f.secretary,
    )
    await f.post(
        "/households",
        {"household_id": "h-p2-b3-1-602", "building_id": "p2-b3", "unit": "1", "room": "602", "members": 3},
        headers=f.secretary,
    )
    await f.wait_households(3)


@pytest.fixture
async def bairuijing(field: Field) -> Field:
    """The visits service with Bairuijing registered."""
    await seed(field)
    return field
