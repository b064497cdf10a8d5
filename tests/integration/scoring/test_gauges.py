"""``gridwork_quota_completion_ratio``: the community's mean 5+1 completion, as the board shows it."""

from __future__ import annotations

import re

from shared.settings import Settings
from tests.harness import eventually
from tests.integration.scoring.conftest import Clock, at, community, scoring_service, shift, visit, worker

DAY = "2025-11-12"  # a Wednesday, a working day


def _series(exposition: str, period: str) -> dict[str, float]:
    pattern = rf'gridwork_quota_completion_ratio\{{community="(\w+)",period="{period}"\}} ([0-9.e+-]+)'
    return {c: float(v) for c, v in re.findall(pattern, exposition)}


async def test_completion_ratio_per_community_and_period_is_the_boards_mean(settings: Settings) -> None:
    clock = Clock(at(DAY, 20))
    async with scoring_service(settings, clock=clock, scoring_gauge_refresh_seconds=0.2) as scoring:
        await scoring.append(community(), worker("w01"), worker("w02"), worker("sec", role="secretary"))
        await scoring.folded(
            await scoring.append(
                shift("w01", at(DAY, 8), 5 * 60),  # the whole day: 5 households in 5 h
                *[visit("w01", f"w01-h{k}", at(DAY, 9, k)) for k in range(5)],
                shift("w02", at(DAY, 8), 60),  # one household in one hour
                visit("w02", "w02-h1", at(DAY, 9)),
            )
        )
        day = await scoring.get(f"/v1/communities/bairuijing/board?period={DAY}&as_of={DAY}")
        month = await scoring.get(f"/v1/communities/bairuijing/board?period=2025-11&as_of={DAY}")
        by_worker = {w["worker_id"]: w["completion"] for w in day["workers"]}
        assert set(by_worker) == {"w01", "w02"}  # the secretary has no quota
        assert by_worker["w01"] > by_worker["w02"]  # w01 met more of the day's items

        async def scraped() -> str | None:
            text = (await scoring.client.get("/metrics")).text
            return text if _series(text, "daily").get("bairuijing") is not None else None

        exposition = await eventually(scraped, timeout=20, what="the completion gauge")
        expected_day = round((by_worker["w01"] + by_worker["w02"]) / 2, 4)
        assert _series(exposition, "daily") == {"bairuijing": expected_day}
        monthly = [w["completion"] for w in month["workers"]]
        assert _series(exposition, "monthly") == {"bairuijing": round(sum(monthly) / len(monthly), 4)}
