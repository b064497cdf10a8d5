"""A database outage answers 503 with Retry-After, and a report is stored only if it is answered
as stored (#15 item 17)."""

from __future__ import annotations

import asyncio

import asyncpg

from shared.settings import Settings
from tests.harness import eventually
from tests.integration.issues.conftest import COMMUNITY, Service


async def test_a_report_whose_database_connection_dies_is_a_503_and_not_stored(
    service: Service, settings: Settings
) -> None:
    admin = await asyncpg.connect(settings.database_url)
    try:
        # The board is locked, so the report's query waits on it; then its connection is killed by
        # the server ("terminating connection due to administrator command"), as in a failover.
        lock = admin.transaction()
        await lock.start()
        await admin.execute("LOCK TABLE proj_issues_board.issues IN ACCESS EXCLUSIVE MODE")
        body = {
            "issue_id": "is-outage-1",
            "category": "safety_hazards",
            "subcategory": "stairwell_clutter",
            "description": "楼道堆物",
            "place": {"compound": "百瑞景", "phase": "4", "building": "4"},
        }
        post = asyncio.create_task(
            service.client.post(f"/v1/communities/{COMMUNITY}/issues", json=body, headers=service.token())
        )
        killer = await asyncpg.connect(settings.database_url)
        try:

            async def waiting() -> list:
                return await killer.fetch(
                    "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database() "
                    "AND query LIKE '%proj_issues_board.issues%' AND pid <> $1",
                    admin.get_server_pid(),
                )

            blocked = await eventually(waiting, timeout=20, what="the report waiting on the board")
            for row in blocked:
                await killer.execute("SELECT pg_terminate_backend($1)", row["pid"])
        finally:
            await killer.close()
        response = await post
        await lock.rollback()
    finally:
        await admin.close()
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"] == "1" and response.json()["error"]["code"] == "unavailable"
    assert await service.events("is-outage-1") == []  # a 5xx means: not stored, send it again
    again = await service.client.post(f"/v1/communities/{COMMUNITY}/issues", json=body, headers=service.token())
    assert again.status_code == 201, again.text
    assert [e.type for e in await service.events("is-outage-1")] == ["IssueReported"]
