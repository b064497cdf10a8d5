"""A local receiver for every HTTP channel: signed webhooks, a WeCom robot, an SMS gateway.

Used by the tests and ``gridwork bench notify`` as the far end, and a reference for an agency
writing its own: it verifies each webhook with :func:`verify_signature` and one
:class:`ReplayGuard`, answers the WeCom robot's JSON, and checks the SMS gateway's bearer token.

Routes (HTTP/1.1 with keep-alive, on 127.0.0.1):

* ``POST /webhook/<name>`` — verified with the secrets configured for ``<name>``; 401 when the
  signature is wrong, stale or replayed.
* ``POST /wecom/send?key=<key>`` — ``{"errcode": 0, "errmsg": "ok"}`` for a known key, 93000 otherwise.
* ``POST /sms`` — 200 ``{"ok": true}`` with the right bearer token, 401 otherwise.

``stop()`` closes the port and every open connection (a receiver that is down); ``start()``
opens the same port again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .channels.webhook import HDR_DELIVERY, ReplayGuard, SignatureError, verify_signature

_REASONS = {200: "OK", 401: "Unauthorized", 404: "Not Found", 500: "Internal Server Error", 503: "Unavailable"}


@dataclass(frozen=True)
class Received:
    """One request the receiver accepted."""

    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    at: float  # time.perf_counter() when it arrived

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def delivery_id(self) -> str | None:
        return self.headers.get(HDR_DELIVERY.lower())


@dataclass
class LocalReceiver:
    """An HTTP receiver on 127.0.0.1 that records what it accepted and refused."""

    port: int = 0
    webhook_secrets: dict[str, list[str]] = field(default_factory=dict)
    wecom_keys: set[str] = field(default_factory=set)
    sms_token: str | None = None
    tolerance: float = 300.0
    #: Path prefix → status to answer with instead (a receiver that is up but failing).
    failing: dict[str, int] = field(default_factory=dict)
    #: Seconds to think before answering (a slow receiver).
    delay: float = 0.0
    on_receive: Callable[[Received], None] | None = None
    received: list[Received] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.guard = ReplayGuard(self.tolerance)
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> LocalReceiver:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 5)
        self._server = None

    def on(self, path: str) -> list[Received]:
        """What was accepted on ``path`` (e.g. ``/webhook/police``)."""
        return [r for r in self.received if r.path == path]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, target, _version = lines[0].split(" ", 2)
                headers: dict[str, str] = {}
                for line in lines[1:]:
                    if ":" in line:
                        key, value = line.split(":", 1)
                        headers[key.strip().lower()] = value.strip()
                length = int(headers.get("content-length", "0") or 0)
                body = await reader.readexactly(length) if length else b""
                if self.delay:
                    await asyncio.sleep(self.delay)
                status, answer = self._route(method, target, headers, body)
                data = json.dumps(answer).encode()
                writer.write(
                    f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(data)}\r\n\r\n".encode()
                    + data
                )
                await writer.drain()
                if headers.get("connection", "").lower() == "close":
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            self._writers.discard(writer)
            writer.close()

    def _route(self, method: str, target: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        parts = urlsplit(target)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        for prefix, status in self.failing.items():
            if parts.path.startswith(prefix):
                return status, {"error": "receiver failing on purpose"}
        if method != "POST":
            return 404, {"error": "POST only"}
        item = Received(parts.path, query, headers, body, time.perf_counter())
        if parts.path.startswith("/webhook/"):
            secrets = self.webhook_secrets.get(parts.path.removeprefix("/webhook/"), [])
            try:
                verify_signature(headers, body, secrets, guard=self.guard, tolerance=self.tolerance)
            except SignatureError as err:
                self.refused.append((parts.path, str(err)))
                return 401, {"error": str(err)}
            return self._accept(item, {"ok": True})
        if parts.path == "/wecom/send":
            if query.get("key") not in self.wecom_keys:
                self.refused.append((parts.path, "unknown robot key"))
                return 200, {"errcode": 93000, "errmsg": "invalid webhook url"}
            return self._accept(item, {"errcode": 0, "errmsg": "ok"})
        if parts.path == "/sms":
            if self.sms_token is not None and headers.get("authorization") != f"Bearer {self.sms_token}":
                self.refused.append((parts.path, "bad token"))
                return 401, {"error": "bad token"}
            return self._accept(item, {"ok": True, "id": json.loads(body).get("id")})
        return 404, {"error": "no such path"}

    def _accept(self, item: Received, answer: Any) -> tuple[int, Any]:
        self.received.append(item)
        if self.on_receive is not None:
            self.on_receive(item)
        return 200, answer


def _serve_forever(config: dict[str, Any], queue: Any, ready: Any) -> None:
    """Child process body: run a receiver and report every accepted request through ``queue``."""

    def report(item: Received) -> None:
        queue.put((item.path, item.query, item.headers, item.body, item.at))

    async def main() -> None:
        receiver = LocalReceiver(**config, on_receive=report)
        await receiver.start()
        ready.set()
        await asyncio.Event().wait()

    asyncio.run(main())


@contextlib.contextmanager
def in_process(receiver: LocalReceiver) -> Iterator[LocalReceiver]:
    """Run ``receiver``'s configuration in a separate process, as an agency's server would be.

    Benchmarks use it so the receiver does not share the measured process's GIL.  Accepted
    requests come back into ``receiver.received`` (and ``on_receive``) through a queue; their
    ``at`` is the child's ``time.perf_counter()``, which on Linux is CLOCK_MONOTONIC and so
    comparable across processes.
    """
    spawning = multiprocessing.get_context("spawn")  # a fresh interpreter: no state copied from this one
    queue = spawning.SimpleQueue()
    ready = spawning.Event()
    if not receiver.port:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            receiver.port = probe.getsockname()[1]
    config = {
        "port": receiver.port,
        "webhook_secrets": receiver.webhook_secrets,
        "wecom_keys": receiver.wecom_keys,
        "sms_token": receiver.sms_token,
        "tolerance": receiver.tolerance,
    }
    process = spawning.Process(target=_serve_forever, args=(config, queue, ready), name="notify-receiver", daemon=True)
    process.start()

    def pump() -> None:
        while (item := queue.get()) is not None:
            path, query, headers, body, at = item
            receiver._accept(Received(path, query, headers, body, at), None)

    thread = threading.Thread(target=pump, name="notify-receiver-pump", daemon=True)
    thread.start()
    if not ready.wait(30):
        process.terminate()
        raise RuntimeError("the receiver process did not start")
    try:
        yield receiver
    finally:
        process.terminate()
        process.join(10)
        queue.put(None)
        thread.join(10)
