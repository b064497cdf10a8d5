"""Outbound calls cannot be aimed inside (#15 item 12): no webhook or robot on loopback, private,
link-local or metadata addresses unless the operator admits them, no redirect followed, no answer
read beyond a cap, no target's own error text kept."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from services.notify.app import build_app
from services.notify.receiver import LocalReceiver
from services.notify.settings import NotifySettings
from shared.eventstore import EventStore
from shared.outbound import OutboundPolicy, TargetRefused
from shared.settings import Settings
from tests.harness import auth, eventually, running

from .conftest import notify_settings_for
from .scenario import COMMUNITY, WEBHOOK_SECRETS, Inbox, register_directory, report_and_escalate
from .test_delivery import daytime_noise

RECIPIENTS = f"/v1/communities/{COMMUNITY}/recipients"
SECRET = WEBHOOK_SECRETS["police-officer"]


def officer(url: str) -> dict[str, Any]:
    return {
        "kind": "police",
        "desk": "community_officer",
        "name": "社区民警",
        "agency": "zhongnanlu-police",
        "channels": {"webhook": {"url": url, "secret": SECRET}},
    }


async def _dead(client: Any, config: NotifySettings, n: int = 1) -> list[dict[str, Any]]:
    rows = (
        await client.get(
            f"/v1/communities/{COMMUNITY}/notifications",
            params={"state": "dead"},
            headers=auth(config, "secretary", community=COMMUNITY),
        )
    ).json()["notifications"]
    return rows if len(rows) == n else []


async def test_a_recipient_aimed_inside_is_refused_naming_the_field(
    settings: Settings, receiver: LocalReceiver, smtp: Inbox
) -> None:
    config = notify_settings_for(settings, receiver, smtp, outbound_allowed_targets=[])  # as compose runs it
    secretary = auth(config, "secretary", community=COMMUNITY)
    async with running(build_app(config)) as client:
        inside = [
            ("webhook", "http://169.254.169.254/latest/meta-data/iam/", "link-local or metadata address"),
            ("webhook", "http://100.100.100.200/latest/meta-data/", "non-public address"),
            ("webhook", f"{receiver.url}/webhook/police-officer", "loopback address"),
            ("webhook", "http://localhost:5432/", "loopback address"),
            ("webhook", "http://10.0.0.7:8080/hook", "private address"),
            ("webhook", "http://[::ffff:192.168.1.1]/hook", "private address"),
            ("wecom", "http://[::1]:2379/v2/keys?key=x", "loopback address"),
            ("wecom", "http://0.0.0.0:8084/", "unspecified address"),
        ]
        for channel, url, reason in inside:
            body = officer(url)
            if channel == "wecom":
                body["channels"] = {"wecom": {"url": url}}
            r = await client.put(f"{RECIPIENTS}/inside", json=body, headers=secretary)
            assert r.status_code == 422, (url, r.text)
            error = r.json()["error"]
            assert error["field"] == f"channels.{channel}.url" and reason in error["message"], (url, error)
        assert (await client.get(f"{RECIPIENTS}/inside", headers=secretary)).status_code == 404


async def test_a_target_admitted_when_written_but_not_when_sent_is_never_called(
    settings: Settings, receiver: LocalReceiver, smtp: Inbox, feed: EventStore
) -> None:
    admitted = notify_settings_for(settings, receiver, smtp, notify_max_attempts=3)
    closed = notify_settings_for(settings, receiver, smtp, notify_max_attempts=3, outbound_allowed_targets=[])
    secretary = auth(admitted, "secretary", community=COMMUNITY)
    # a name (resolved at the connection: the addresses checked are those connected to), then a literal address
    for n, url in enumerate(
        [f"http://localhost:{receiver.port}/webhook/police-officer", f"{receiver.url}/webhook/police-officer"], 1
    ):
        # written while loopback was admitted …
        async with running(build_app(admitted)) as client:
            r = await client.put(f"{RECIPIENTS}/police-officer", json=officer(url), headers=secretary)
            assert r.status_code in (200, 201), r.text
        # … sent once the operator admits nothing: never reached, dead at once with a fixed reason
        async with running(build_app(closed)) as client:
            await report_and_escalate(feed, *daytime_noise(n))
            rows = await eventually(lambda n=n: _dead(client, closed, n), timeout=30, what="the notification dead")
            assert {row["last_error"] for row in rows} == {"webhook: target refused (loopback address)"}
            assert {row["attempts"] for row in rows} == {1}  # permanent: not retried
    assert receiver.received == []


class Hostile:
    """A receiver that redirects inside, or answers with a body without end."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self.streamed = 0
        self.finished_streaming = False
        self.server: asyncio.AbstractServer | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.server:
            self.server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 5)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            path = head.split(" ", 2)[1]
            self.requests.append(path)
            length = next(
                (
                    int(line.split(":", 1)[1])
                    for line in head.split("\r\n")
                    if line.lower().startswith("content-length")
                ),
                0,
            )
            await reader.readexactly(length)
            if path.startswith("/redirect"):
                writer.write(
                    f"HTTP/1.1 307 Temporary Redirect\r\nLocation: http://127.0.0.1:{self.port}/inside\r\n"
                    "Content-Length: 0\r\n\r\n".encode()
                )
                await writer.drain()
                return
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
            chunk = b"x" * 65536
            for _ in range(2000):  # 128 MiB, unless the reader stops
                writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                await writer.drain()
                self.streamed += len(chunk)
            writer.write(b"0\r\n\r\n")
            await writer.drain()
            self.finished_streaming = True
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()


@contextlib.asynccontextmanager
async def hostile() -> AsyncIterator[Hostile]:
    h = Hostile()
    await h.start()
    try:
        yield h
    finally:
        await h.stop()


async def test_no_redirect_is_followed_and_an_endless_answer_is_not_read(
    settings: Settings, receiver: LocalReceiver, smtp: Inbox, feed: EventStore
) -> None:
    config = notify_settings_for(settings, receiver, smtp, notify_max_attempts=2)
    secretary = auth(config, "secretary", community=COMMUNITY)
    async with hostile() as far, running(build_app(config)) as client:
        await register_directory(client, config, receiver, only={"police-officer"})
        r = await client.put(
            f"{RECIPIENTS}/police-officer",
            json=officer(f"http://127.0.0.1:{far.port}/redirect"),
            headers=secretary,
        )
        assert r.status_code == 200
        await report_and_escalate(feed, *daytime_noise(1))
        rows = await eventually(lambda: _dead(client, config), timeout=30, what="the redirected one dead")
        assert rows[0]["last_error"] == "webhook: HTTP 307" and rows[0]["attempts"] == 1
        assert far.requests == ["/redirect"]  # never /inside

        r = await client.put(
            f"{RECIPIENTS}/police-officer", json=officer(f"http://127.0.0.1:{far.port}/endless"), headers=secretary
        )
        assert r.status_code == 200
        await report_and_escalate(feed, *daytime_noise(2))

        async def delivered() -> list[dict[str, Any]]:
            rows = (
                await client.get(
                    f"/v1/communities/{COMMUNITY}/notifications", params={"state": "delivered"}, headers=secretary
                )
            ).json()["notifications"]
            return rows

        await eventually(delivered, timeout=30, what="the endless answer taken as a 2xx")
        assert not far.finished_streaming and far.streamed < 32 * 1024 * 1024


async def test_the_policy_checks_every_address_and_admits_what_the_operator_lists() -> None:
    policy = OutboundPolicy.from_entries(["10.20.0.0/16", "Gateway.Internal", "::1"])
    policy.check_address("10.20.3.4")
    policy.check_address("::1")
    policy.check_address("93.184.216.34")
    for address, reason in [
        ("10.21.0.1", "private address"),
        ("127.0.0.1", "loopback address"),
        ("::ffff:127.0.0.1", "loopback address"),
        ("fe80::1", "link-local or metadata address"),
        ("fd00:ec2::254", "private address"),
        ("224.0.0.1", "multicast address"),
    ]:
        try:
            policy.check_address(address)
        except TargetRefused as err:
            assert err.reason == reason, address
        else:
            raise AssertionError(f"{address} admitted")
    assert policy.host_admitted("gateway.internal.")
    for url in ("ftp://example.com/", "http://user:pw@example.com/", "http:///x", "http://example.com:99999/"):
        try:
            policy.check_literal(url)
        except TargetRefused:
            continue
        raise AssertionError(f"{url} admitted")
