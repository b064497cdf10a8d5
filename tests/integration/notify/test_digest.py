"""The secretary's daily digest: missed 5+1 quotas in ONE message, not one each."""

from __future__ import annotations

from dataclasses import replace
from datetime import time

from services.notify.app import build_app
from services.notify.reactions.timers import send_digests
from services.notify.receiver import LocalReceiver
from shared.eventstore import EventStore
from shared.settings import Settings
from tests.harness import eventually, running

from .conftest import notify_settings_for
from .scenario import COMMUNITY, WECOM_KEYS, Inbox, quota_closed, register_directory


async def test_the_secretary_gets_one_digest_of_every_missed_quota(
    settings: Settings, receiver: LocalReceiver, smtp: Inbox, feed: EventStore
) -> None:
    config = notify_settings_for(
        settings, receiver, smtp, notify_digest_at=time(0, 0), notify_digest_settle_seconds=1.0
    )
    app = build_app(config)
    async with running(app) as client:
        await register_directory(client, config, receiver, only={"secretary"})
        closed = [
            quota_closed("w01", "2025-04-14", ["hours_in_grid", "special_visit"]),
            quota_closed("w02", "2025-04-14", ["households_contacted"]),
            quota_closed("w03", "2025-04-14", ["small_problem"]),
            quota_closed("w04", "2025-04-14", []),  # met everything: not in the digest
        ]
        results = await feed.append_many([([e], 0) for e in closed])
        assert not any(isinstance(r, Exception) for r in results)

        await eventually(lambda: _n(smtp.to("shuji@bairuijing.test"), 1), timeout=30, what="the digest email")
        (mail,) = smtp.to("shuji@bairuijing.test")
        body = mail.get_content()
        assert "5+1任务未完成 3 项（3 名网格员）" in mail["Subject"]
        assert "w01（日 2025-04-14）未完成：在网格时长、走访帮扶对象" in body
        assert "w02" in body and "联系住户" in body and "w03" in body and "w04" not in body
        robot = await eventually(
            lambda: _n([r for r in receiver.on("/wecom/send") if r.query["key"] == WECOM_KEYS["secretary"]], 1),
            timeout=30,
        )
        assert "w01" in robot[0].json()["markdown"]["content"]

        # A closing that arrives after today's digest waits for tomorrow's: still one message today.
        await feed.append([quota_closed("w05", "2025-04-14", ["special_visit"])], 0)
        runtime = app.state.runtime

        async def line_waiting() -> bool:
            async with runtime.pool.acquire() as conn:
                return bool(
                    await conn.fetchval(
                        "SELECT count(*) FROM notify_digest_lines WHERE community = $1 AND worker_id = 'w05' "
                        "AND digest_id IS NULL",
                        COMMUNITY,
                    )
                )

        await eventually(line_waiting, timeout=30, what="w05's line")
        settled = replace(runtime.deps, settings=config.model_copy(update={"notify_digest_settle_seconds": 0}))
        assert await send_digests(deps=settled) == 0
        assert await line_waiting()
        assert len(smtp.to("shuji@bairuijing.test")) == 1


async def _n(items: list, n: int) -> list | None:
    return items if len(items) == n else None
