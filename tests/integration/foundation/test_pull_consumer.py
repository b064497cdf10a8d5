"""A pull on a consumer that is not there ends at once and says so, so that the projection runner
makes the consumer again instead of pulling on nothing for ever (the stream leader killed while the
consumer was being made, say)."""

from __future__ import annotations

import pytest

from shared.eventstore import connect
from shared.nats.pull_consumer import ConsumerLost, PullConsumer
from shared.settings import Settings


async def test_pulling_on_a_consumer_that_does_not_exist_raises_consumer_lost(settings: Settings) -> None:
    nc = await connect(settings, "tests-pull")
    try:
        puller = PullConsumer(nc, settings.stream_name(), f"{settings.namespace}_nobody")
        with pytest.raises(ConsumerLost):
            await puller.fetch(10, wait=0.5)
        await puller.stop()
    finally:
        await nc.close()
