"""The demo's console accounts: the people of the seed, ready to sign in (their passwords printed)."""

from __future__ import annotations

from dataclasses import dataclass

from shared.events.console import Scope
from shared.settings import Settings

from .community import COMMUNITY


@dataclass(frozen=True)
class DemoAccount:
    username: str
    name: str
    scope: Scope
    password: str
    who: str  # what the printed table says of them


def demo_accounts(street: str, worker_id: str, grid_id: str) -> list[DemoAccount]:
    """The secretary, the street office, the police duty desk, property management and a grid worker.

    Their passwords are the demo's (printed, local only) and not one-time, so each URL the demo
    prints opens straight into that person's pages; a real account always starts one-time."""
    return [
        DemoAccount(
            "shuji", "刘书记", Scope(role="secretary", community=COMMUNITY), "demo-shuji-2026", "community secretary"
        ),
        DemoAccount(
            "jiedao", "中南路街道", Scope(role="street_admin", street=street), "demo-jiedao-2026", "street office"
        ),
        DemoAccount(
            "paichusuo",
            "中南路派出所值班台",
            Scope(role="agency", agency="zhongnanlu-police", agency_kind="police", community=COMMUNITY),
            "demo-police-2026",
            "police duty desk",
        ),
        DemoAccount(
            "wuye",
            "百瑞景物业",
            Scope(role="agency", agency="bairuijing-property", agency_kind="property_management", community=COMMUNITY),
            "demo-wuye-2026",
            "property management",
        ),
        DemoAccount(
            "wanggeyuan",
            "网格员",
            Scope(role="grid_worker", community=COMMUNITY, grid=grid_id, worker_id=worker_id),
            "demo-worker-2026",
            "grid worker",
        ),
    ]


async def open_demo_accounts(settings: Settings, accounts: list[DemoAccount]) -> None:
    """Open each account through the event store (as ``gridwork account add`` does)."""
    from services.console.provisioning import add_accounts

    await add_accounts([(a.username, a.name, a.scope, a.password) for a in accounts], settings=settings, one_time=False)
