"""The event store's own publish framing puts on the wire what nats-py's ``publish`` would."""

from __future__ import annotations

import asyncio

import nats.errors
import pytest

from shared.eventstore import connect
from shared.nats import patches
from shared.settings import Settings


async def test_framed_publish_arrives_as_nats_py_publish_sends_it(settings: Settings) -> None:
    nc = await connect(settings, "test-natsfix")
    try:
        got: list[tuple[str, str, bytes, dict[str, str]]] = []
        done = asyncio.Event()

        async def on_msg(msg) -> None:
            got.append((msg.subject, msg.reply, msg.data, dict(msg.headers or {})))
            if len(got) == 4:
                done.set()

        subject = f"{settings.namespace}_natsfix.a.b"
        await nc.subscribe(f"{settings.namespace}_natsfix.>", cb=on_msg)
        headers = {"Nats-Msg-Id": "0193d5e2-7c1a-7f00-8000-000000000001", "Gridwork-Version": "3"}
        payload = '{"text": "网格员 ✓"}'.encode()
        await nc.publish(subject, payload, reply="_INBOX.x.1", headers=headers)
        await patches.publish(nc, subject, payload, "_INBOX.x.1", headers)
        await nc.publish(subject, b"", headers={"A": "1"})
        await patches.publish(nc, subject, b"", "", {"A": "1"})
        await asyncio.wait_for(done.wait(), 5)
        assert got[0] == got[1] == (subject, "_INBOX.x.1", payload, headers)
        assert got[2] == got[3] == (subject, "", b"", {"A": "1"})
        assert patches.header_block({"A": "1", "B": "x.y.*"}) == b"NATS/1.0\r\nA: 1\r\nB: x.y.*\r\n\r\n"

        # the connection's limits and state are checked as nats-py checks them
        with pytest.raises(nats.errors.MaxPayloadError):
            await patches.publish(nc, subject, b"x" * (nc.max_payload + 1), "", {"A": "1"})
    finally:
        await nc.close()
    with pytest.raises(nats.errors.ConnectionClosedError):
        await patches.publish(nc, subject, b"", "", {"A": "1"})
