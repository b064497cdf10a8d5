"""A lean JetStream pull-consumer client for the projection hot path.

nats-py's ``fetch`` hands each message through a queue, a ``wait_for`` and a metadata parser;
at tens of thousands of events a second that overhead is most of the cost.  This puller sends the
raw ``CONSUMER.MSG.NEXT`` request, collects the batch in the subscription callback and reads the
stream sequence straight from the ack subject.

Protocol: first ask with ``no_wait`` for what is there now; if nothing is, long-poll for ONE
message (so no pull request is ever left outstanding when ``fetch`` returns).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from nats.aio.client import Client as NATS

from ..eventstore import StoredEvent


@dataclass(slots=True)
class Pulled:
    """One delivered message: the event, how often it was delivered, and its ack subject."""

    event: StoredEvent
    deliveries: int
    reply: str
    pending: int


def parse_ack_subject(reply: str) -> tuple[int, int, int, int, int]:
    """(stream seq, deliveries, timestamp ns, pending, consumer seq) from a ``$JS.ACK…`` subject."""
    t = reply.split(".")
    if len(t) == 9:  # $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>
        return int(t[5]), int(t[4]), int(t[7]), int(t[8]), int(t[6])
    # $JS.ACK.<domain>.<account>.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>[.<token>]
    return int(t[7]), int(t[6]), int(t[9]), int(t[10]), int(t[8])


class ConsumerLost(Exception):
    """The pull request's consumer is not there to answer (no responders, deleted, its leader
    changed): the caller must make it again — pulling on would wait for ever on nothing."""


#: Status answers to a pull request after which pulling on the same consumer gets nothing more.
_LOST = ("Consumer Deleted", "Leadership Change", "Consumer is push based")


class PullConsumer:
    """Fetch batches from a durable or ephemeral pull consumer."""

    def __init__(self, nc: NATS, stream: str, consumer: str) -> None:
        self.nc = nc
        self.subject = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}"
        self.inbox = ""
        self._sub: Any = None
        self._buf: list[Pulled] = []
        self._want = 0
        self._done = asyncio.Event()
        #: Consumer sequence of the last delivery, and whether a delivery went missing since.
        self.last_delivery = 0
        self.gap = False
        #: Why the last request ended without messages, when the consumer is gone (see ConsumerLost).
        self._lost: str | None = None

    async def start(self) -> None:
        self.inbox = self.nc.new_inbox()
        self._sub = await self.nc.subscribe(
            self.inbox, cb=self._on_msg, pending_msgs_limit=200_000, pending_bytes_limit=512 * 1024 * 1024
        )

    async def stop(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None

    async def _on_msg(self, msg: Any) -> None:
        reply = msg.reply
        if not reply:  # a status message: 404 no messages, 408 timeout, 409 …: the request ended
            headers = msg.headers or {}
            status, description = headers.get("Status", ""), headers.get("Description", "")
            if status == "503" or (status == "409" and any(d in description for d in _LOST)):
                self._lost = f"{status} {description or 'no responders'}".strip()
            self._done.set()
            return
        seq, deliveries, ts, pending, cseq = parse_ack_subject(reply)
        if self.last_delivery and cseq != self.last_delivery + 1:
            # Every delivery of a consumer has the next consumer sequence: a jump means messages
            # were lost on the way (a cluster node died while routing them).
            self.gap = True
        self.last_delivery = cseq
        self._buf.append(Pulled(StoredEvent(seq, msg.subject, msg.data, msg.headers, ts), deliveries, reply, pending))
        if len(self._buf) >= self._want:
            self._done.set()

    async def _request(self, batch: int, *, no_wait: bool, expires: float) -> list[Pulled]:
        self._buf = []
        self._want = batch
        self._lost = None
        self._done.clear()
        req: dict[str, Any] = {"batch": batch, "expires": int(expires * 1e9)}
        if no_wait:
            req["no_wait"] = True
        await self.nc.publish(self.subject, json.dumps(req).encode(), reply=self.inbox)
        try:
            await asyncio.wait_for(self._done.wait(), expires + 5)
        except TimeoutError:
            pass
        out, self._buf = self._buf, []
        if not out and self._lost is not None:
            raise ConsumerLost(self._lost)
        return out

    async def fetch(self, batch: int, wait: float = 1.0) -> list[Pulled]:
        """Up to ``batch`` messages: at once if any are waiting, else the first within ``wait`` seconds."""
        if self._sub is None:
            await self.start()
        got = await self._request(batch, no_wait=True, expires=wait)
        if got:
            return got
        return await self._request(1, no_wait=False, expires=wait)

    async def ack(self, pulled: Pulled) -> None:
        """Ack (with AckAll consumers: everything up to and including this message)."""
        await self.nc.publish(pulled.reply, b"+ACK")

    async def working(self, pulled: Pulled) -> None:
        """Tell JetStream we are still on it (resets its ack timer, so it does not redeliver)."""
        await self.nc.publish(pulled.reply, b"+WPI")

    async def nak(self, pulled: Pulled, delay: float) -> None:
        await self.nc.publish(pulled.reply, b"-NAK " + json.dumps({"delay": int(delay * 1e9)}).encode())
