"""A puller whose deliveries skip nats-py's per-message machinery: what replays read with.

nats-py matches every control line against two regular expressions, parses the headers, builds a
``Msg``, queues it for the subscription's task, which then calls the callback.  On this machine
that is ~15 µs of the ~25 µs it takes a replay to consume one event.  While a
:class:`ReplayReader` runs, the connection's protocol parser is a :class:`_Parser`: it splits a
delivery's control line itself and, for the puller's inbox, hands subject, ack subject and payload
straight to the puller (no ``Msg``, no queue, no task switch).  Everything else (other
subscriptions, status messages without a reply, PING/PONG/INFO/-ERR) goes exactly where nats-py
sends it, in arrival order.  The original parser comes back when the last replay reader stops.

Headers are kept raw and parsed only if read (:class:`shared.nats.patches.LazyHeaders`).  Given
``types``, the puller keeps only events of those types (the subject's last token) and drops the
rest as they arrive, so its consumer needs no subject filter (see ``shared.projection.stream_reader``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from nats.aio.client import Client as NATS
from nats.errors import ProtocolError
from nats.protocol.parser import AWAITING_CONTROL_LINE, AWAITING_MSG_PAYLOAD, Parser

from ..eventstore import StoredEvent
from . import patches
from .patches import LazyHeaders
from .pull_consumer import PullConsumer, Pulled, parse_ack_subject

_CRLF = b"\r\n"
_HDR_LINE = len(b"NATS/1.0\r\n")  # the header block's version line, before the header lines

#: (subject, ack subject, raw header lines, payload) of a delivery with a reply subject.
Handler = Callable[[bytes, bytes, bytes, bytes], None]


def _shared(name: str) -> Any:
    """An attribute of the parsing state that lives on the original parser (one copy for both)."""
    return property(lambda self: getattr(self.original, name), lambda self, value: setattr(self.original, name, value))


class _Parser(Parser):
    """nats-py's parser, except that deliveries to registered sids go straight to their handler.

    The parsing state (buffer, state, bytes needed, header size, message arguments) is the
    original parser's own, read and written through: swapping parsers in or out never leaves one
    of them with a stale copy — the original may be suspended mid-parse (awaiting a callback) when
    a reader registers, and a stale header size once cut the head off the next message without
    headers (a consumer-info reply that would not parse)."""

    buf = _shared("buf")
    state = _shared("state")
    needed = _shared("needed")
    header_needed = _shared("header_needed")
    msg_arg = _shared("msg_arg")

    def __init__(self, nc: NATS, original: Parser) -> None:  # not Parser.__init__: that resets the state
        self.nc = nc
        self.original = original
        self.fast: dict[bytes, Handler] = {}
        self._lines = Parser(nc)  # parses the one-line operations, exactly as nats-py does

    async def parse(self, data: bytes = b"") -> None:
        buf = self.buf
        buf.extend(data)
        while buf:
            if self.state == AWAITING_CONTROL_LINE and self.fast:
                # Deliveries to fast sids, straight from a snapshot of the buffer, until anything else.
                done = self._fast_run(bytes(buf))
                if done:
                    del buf[:done]
                    continue
            if not await self._one():
                return

    def _fast_run(self, view: bytes) -> int:
        """Hand over the leading run of complete deliveries to fast sids; returns the bytes consumed."""
        fast, stats = self.fast, self.nc.stats
        pos, size = 0, len(view)
        while pos < size:
            end = view.find(_CRLF, pos)
            if end < 0 or not view.startswith(b"HMSG ", pos):
                break
            args = view[pos + 5 : end].split()
            if len(args) != 5:  # no reply subject (a status message) or malformed: the general path
                break
            subject, sid, reply, hlen, tlen = args
            handler = fast.get(sid)
            start = end + 2
            stop = start + int(tlen)
            if handler is None or size < stop + 2:
                break
            hsize = int(hlen)
            payload = view[start + hsize : stop]
            stats["in_msgs"] += 1
            stats["in_bytes"] += len(payload)
            handler(subject, reply, view[start : start + hsize], payload)
            pos = stop + 2
        return pos

    async def _one(self) -> bool:
        """Parse ONE operation at the head of the buffer as nats-py would; False if it is incomplete."""
        buf, nc = self.buf, self.nc
        if self.state == AWAITING_MSG_PAYLOAD:  # a message the original parser had half read
            if len(buf) < self.needed + 2:
                return False
            arg, hsize = self.msg_arg, self.header_needed
            hdr = bytes(buf[:hsize]) if hsize else None
            payload = bytes(buf[hsize : self.needed])
            del buf[: self.needed + 2]
            self.state, self.header_needed = AWAITING_CONTROL_LINE, 0
            await nc._process_msg(arg["sid"], arg["subject"], arg["reply"], payload, hdr)
            return True
        end = buf.find(_CRLF)
        if end < 0:
            return False  # wait for the rest of the line
        if buf.startswith((b"HMSG ", b"HMSG\t")):
            args = bytes(buf[5:end]).split()
            if len(args) == 5:
                subject, sid, reply, hlen, tlen = args
            elif len(args) == 4:
                subject, sid, hlen, tlen = args
                reply = b""
            else:
                raise ProtocolError("nats: malformed MSG")
            hsize = int(hlen)
        elif buf.startswith((b"MSG ", b"MSG\t")):
            args = bytes(buf[4:end]).split()
            if len(args) == 4:
                subject, sid, reply, tlen = args
            elif len(args) == 3:
                subject, sid, tlen = args
                reply = b""
            else:
                raise ProtocolError("nats: malformed MSG")
            hsize = 0
        else:  # one protocol line (+OK, -ERR, PING, PONG, INFO): nats-py's own handling
            line = bytes(buf[: end + 2])
            del buf[: end + 2]
            self._lines.reset()
            await self._lines.parse(line)
            return True
        start = end + 2
        stop = start + int(tlen)
        if len(buf) < stop + 2:
            return False  # wait for the whole message
        handler = self.fast.get(sid) if reply else None
        hdr = bytes(buf[start : start + hsize]) if hsize else None
        payload = bytes(buf[start + hsize : stop])
        del buf[: stop + 2]
        if handler is not None:
            nc.stats["in_msgs"] += 1
            nc.stats["in_bytes"] += len(payload)
            handler(subject, reply, hdr or b"", payload)
        else:
            await nc._process_msg(int(sid), subject, reply, payload, hdr)
        return True


def _register(nc: NATS, sid: int, handler: Handler) -> None:
    parser = nc._ps
    if not isinstance(parser, _Parser):
        parser = nc._ps = _Parser(nc, parser)
    parser.fast[str(sid).encode()] = handler


def _unregister(nc: NATS, sid: int) -> None:
    parser = nc._ps
    if isinstance(parser, _Parser):
        parser.fast.pop(str(sid).encode(), None)
        if not parser.fast:
            nc._ps = parser.original  # the state is the original's already: nothing to copy back


class ReplayReader(PullConsumer):
    """A :class:`PullConsumer` whose deliveries bypass nats-py's Msg/queue/task path (see the module doc)."""

    def __init__(self, nc: NATS, stream: str, consumer: str, *, types: Iterable[str] | None = None) -> None:
        super().__init__(nc, stream, consumer)
        self.stream, self.consumer = stream, consumer
        #: Event types to keep (the subject's last token); others are counted and dropped here.
        self.types = frozenset(t.encode() for t in types) if types is not None else None
        self.drained = False  # the last delivery said the consumer had nothing after it
        self._seen = 0  # deliveries to the current request, kept or dropped

    async def _request(self, batch: int, *, no_wait: bool, expires: float) -> list[Pulled]:
        self._seen = 0
        return await super()._request(batch, no_wait=no_wait, expires=expires)

    async def fetch(self, batch: int, wait: float = 1.0) -> list[Pulled]:
        """As :meth:`PullConsumer.fetch`; empty also when everything delivered was of other types."""
        if self._sub is None:
            await self.start()
        got = await self._request(batch, no_wait=True, expires=wait)
        if got or self._seen:
            return got
        return await self._request(1, no_wait=False, expires=wait)

    async def pending(self) -> int:
        """Messages the consumer has yet to deliver, as JetStream counts them."""
        info = await self.nc.jetstream(timeout=10).consumer_info(self.stream, self.consumer)
        return int(info.num_pending or 0)

    async def start(self) -> None:
        await super().start()
        if patches.active():  # else deliveries come through nats-py's own path, to _on_msg
            _register(self.nc, self._sub._id, self._take)

    async def stop(self) -> None:
        if self._sub is not None and patches.active():
            _unregister(self.nc, self._sub._id)
        await super().stop()

    async def _on_msg(self, msg: Any) -> None:
        """A delivery on the stock nats-py path (the patches stood down): the same bookkeeping."""
        if not msg.reply:  # a status message: the request ended
            self._done.set()
            return
        self._keep(msg.subject.encode(), msg.reply.encode(), msg.headers or None, msg.data)

    def _take(self, subject: bytes, reply: bytes, hdr: bytes, data: bytes) -> None:
        """One delivery (as :meth:`PullConsumer._on_msg` takes it; status messages still go there)."""
        # the header block's first line ("NATS/1.0") has no colon: the lazy parser skips it
        self._keep(subject, reply, LazyHeaders(hdr) if len(hdr) > _HDR_LINE else None, data)

    def _keep(self, subject: bytes, reply: bytes, headers: Mapping[str, str] | None, data: bytes) -> None:
        """Count one delivery and keep its event when it is of a wanted type."""
        t = reply.split(b".")
        if len(t) == 9:  # $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>
            seq, deliveries, ts, pending, cseq = int(t[5]), int(t[4]), int(t[7]), int(t[8]), int(t[6])
        else:
            seq, deliveries, ts, pending, cseq = parse_ack_subject(reply.decode())
        if self.last_delivery and cseq != self.last_delivery + 1:
            self.gap = True  # a delivery went missing (see PullConsumer._on_msg)
        self.last_delivery = cseq
        self.drained = pending == 0
        self._seen += 1
        if self.types is None or subject[subject.rfind(b".") + 1 :] in self.types:
            event = StoredEvent(seq, subject.decode(), data, headers, ts)
            self._buf.append(Pulled(event, deliveries, reply.decode(), pending))
        if self._seen >= self._want:
            self._done.set()
