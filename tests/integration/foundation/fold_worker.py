"""A projection process for the crash tests: folds the activity projection until told to stop.

Run as ``python -m tests.integration.foundation.fold_worker``; settings come from GRIDWORK_* variables.  It
exits by itself once the checkpoint reaches GRIDWORK_TEST_FOLD_UNTIL.
"""

from __future__ import annotations

import asyncio
import os

from shared.db import create_pool
from shared.event_counts import EventCountsProjection
from shared.eventstore import connect
from shared.nats import patches
from shared.projection import ProjectionRunner
from shared.settings import Settings


async def main() -> None:
    patches.install()
    settings = Settings()
    until = int(os.environ["GRIDWORK_TEST_FOLD_UNTIL"])
    nc = await connect(settings, "fold-worker")
    pool = await create_pool(settings)
    runner = ProjectionRunner(EventCountsProjection(), nc=nc, pool=pool, settings=settings)
    await runner.setup()
    task = asyncio.create_task(runner.run())
    while not task.done():
        if (await runner.status())["checkpoint"] >= until:
            break
        await asyncio.sleep(0.05)
    runner.stop()
    await task
    await nc.close()
    await pool.close()


if __name__ == "__main__":
    asyncio.run(main())
