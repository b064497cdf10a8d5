"""The 12345 hotline round trip: a work order in, every status change back to a real HTTP receiver."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
import uvicorn

from services.cli.embedded import free_port
from services.issues.app import build_app
from shared.events import now
from shared.settings import Settings
from tests.harness import eventually, running
from tests.integration.issues.conftest import COMMUNITY, Service, make_settings

ORDERS = f"/v1/communities/{COMMUNITY}/hotline/orders"


class HotlineReceiver:
    """A stand-in for the 12345 platform's feedback endpoint: a real HTTP server on 127.0.0.1."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.received: list[dict[str, Any]] = []
        #: status → the HTTP status the platform answers a feedback with (it refuses that one)
        self.refuse: dict[str, int] = {}
        self.server: uvicorn.Server | None = None
        self.task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/feedback"

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        self.received.append(
            {**json.loads(body), "_key": headers.get("idempotency-key"), "_auth": headers.get("authorization")}
        )
        answer = self.refuse.get(self.received[-1]["status"], 200)
        await send(
            {"type": "http.response.start", "status": answer, "headers": [(b"content-type", b"application/json")]}
        )
        await send({"type": "http.response.body", "body": b'{"code": 0}' if answer == 200 else b'{"msg": "internal"}'})

    async def start(self) -> None:
        config = uvicorn.Config(self, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.task = asyncio.create_task(self.server.serve())

        async def started() -> bool:
            return bool(self.server and self.server.started)

        await eventually(started, timeout=30, what="hotline receiver listening")

    async def stop(self) -> None:
        if self.server and self.task:
            self.server.should_exit = True
            await self.task

    def statuses(self, order_no: str) -> list[str]:
        return [r["status"] for r in self.received if r["order_no"] == order_no]


@pytest.fixture
async def receiver() -> AsyncIterator[HotlineReceiver]:
    r = HotlineReceiver(free_port())
    yield r
    await r.stop()


def work_order(order_no: str, **extra: Any) -> dict[str, Any]:
    return {
        "order_no": order_no,
        "request": "Resident of building 3 complains that dogs are walked off the lead at 7 am",
        "category": "conflicts_disputes",
        "subcategory": "pets",
        "place": {"compound": "bairuijing", "phase": "3", "building": "3"},
        "response_deadline": (now() + timedelta(hours=2)).isoformat(),
        "resolution_deadline": (now() + timedelta(days=3)).isoformat(),
        **extra,
    }


async def test_a_work_order_comes_in_once_and_every_status_change_goes_back_once(
    settings: Settings, receiver: HotlineReceiver
) -> None:
    await receiver.start()
    s = make_settings(settings, hotline_callback_url=receiver.url, hotline_callback_token="secret-from-12345")
    app = build_app(s)
    async with running(app) as client:
        service = Service(client, app, s)
        hotline = service.token("hotline")
        first = await client.post(ORDERS, json=work_order("GD20250414001"), headers=hotline)
        assert first.status_code == 201, first.text
        assert first.json()["issue_id"] == "hl-GD20250414001"
        again = await client.post(ORDERS, json=work_order("GD20250414001"), headers=hotline)
        assert again.status_code == 200 and again.json()["duplicate"]
        assert await service.types("hl-GD20250414001") == ["HotlineOrderReceived", "IssueReported"]
        assert (await client.post(ORDERS, json=work_order("GD2"), headers=service.token())).status_code == 403
        late = work_order(
            "GD3", resolution_deadline=now().isoformat(), response_deadline=(now() + timedelta(hours=1)).isoformat()
        )
        bad = await client.post(ORDERS, json=late, headers=hotline)
        assert bad.status_code == 422 and bad.json()["error"]["field"] == "resolution_deadline"
        nameless = await client.post(ORDERS, json={**work_order("x"), "order_no": "GD 1/2"}, headers=hotline)
        assert nameless.status_code == 422 and nameless.json()["error"]["field"] == "order_no"

        issue = "hl-GD20250414001"
        v = (await service.act(issue, "accept", first.json()["issue"]["version"]))["version"]
        v = (await service.act(issue, "assign", v, assignee_kind="volunteer_team", assignee_id="dog-walkers"))[
            "version"
        ]
        v = (await service.act(issue, "resolve", v, resolution="staggered dog-walking times agreed"))["version"]
        callback = f"{ORDERS}/GD20250414001/callback"
        unhappy = await client.post(
            callback, json={"satisfied": False, "satisfaction": 2, "note": "still off the lead"}, headers=hotline
        )
        assert unhappy.status_code == 200 and unhappy.json()["issue"]["status"] == "reopened"
        v = unhappy.json()["version"]
        v = (await service.act(issue, "assign", v, assignee_kind="volunteer_team", assignee_id="dog-patrol"))["version"]
        await service.act(issue, "resolve", v, resolution="volunteer patrol at 7 am, points for volunteers")
        happy = await client.post(callback, json={"satisfied": True, "satisfaction": 5}, headers=hotline)
        assert happy.json()["issue"]["status"] == "closed" and happy.json()["events"] == [
            "IssueVerified",
            "IssueClosed",
        ]
        resent = await client.post(callback, json={"satisfied": True, "satisfaction": 5}, headers=hotline)
        assert resent.status_code == 200 and resent.json()["duplicate"]
        expected = ["accepted", "assigned", "resolved", "reopened", "assigned", "resolved", "verified", "closed"]

        async def all_back() -> bool:
            return receiver.statuses("GD20250414001") == expected

        await eventually(all_back, timeout=30, what="every status change fed back")
        feedback_ids = [r["feedback_id"] for r in receiver.received]
        assert len(set(feedback_ids)) == len(expected)
        assert all(
            r["_key"] == r["feedback_id"] and r["_auth"] == "Bearer secret-from-12345" for r in receiver.received
        )

        async def all_recorded() -> list:
            sent = [e for e in await service.events(issue) if e.type == "HotlineFeedbackSent"]
            return sent if len(sent) == len(expected) else []

        sent = await eventually(all_recorded, timeout=30, what="HotlineFeedbackSent recorded")
        assert [str(e.causation_id) for e in sent] == feedback_ids
        assert [e.data.status for e in sent] == expected
        order = (await client.get(f"{ORDERS}/GD20250414001", headers=hotline)).json()
        assert [f["status"] for f in order["feedback"]] == expected and all(f["sent_at"] for f in order["feedback"])
        assert order["issue"]["version"] == 11  # receipts do not count as changes of the issue


async def test_feedback_waits_while_the_hotline_is_down_and_arrives_once(
    settings: Settings, receiver: HotlineReceiver
) -> None:
    s = make_settings(settings, hotline_callback_url=receiver.url)  # nobody listens there yet
    app = build_app(s)
    async with running(app) as client:
        service = Service(client, app, s)
        hotline = service.token("hotline")
        assert (await client.post(ORDERS, json=work_order("GD20250414002"), headers=hotline)).status_code == 201
        await service.act("hl-GD20250414002", "accept", 2)  # order received + issue reported

        async def failing() -> dict:
            feedback = (await client.get(f"{ORDERS}/GD20250414002", headers=hotline)).json()["feedback"]
            return feedback[0] if feedback and feedback[0]["attempts"] >= 4 else {}

        down = await eventually(failing, timeout=30, what="failed delivery attempts")
        assert down["sent_at"] is None and down["last_error"]
        # /readyz says what the service still owes the hotline (the demo waits on it)
        owed = (await client.get("/readyz")).json()["outboxes"]
        assert [(o["outbox"], o["pending"] + o["scheduled"]) for o in owed] == [("hotline_feedback", 1)]
        await receiver.start()

        async def delivered() -> bool:
            return receiver.statuses("GD20250414002") == ["accepted"]

        await eventually(delivered, timeout=30, what="feedback delivered once the hotline is back")
        [sent] = await eventually(
            lambda: _sent(service, "hl-GD20250414002"), timeout=30, what="HotlineFeedbackSent recorded"
        )
        assert sent.data.attempts >= 5 and sent.data.status == "accepted"
        assert receiver.statuses("GD20250414002") == ["accepted"]  # once, though it was tried many times

        async def nothing_owed() -> bool:
            owed = (await client.get("/readyz")).json()["outboxes"]
            return owed == [{"outbox": "hotline_feedback", "pending": 0, "scheduled": 0, "held": 0, "dead": 0}]

        await eventually(nothing_owed, timeout=30, what="the outbox empty in /readyz")


async def _sent(service: Service, issue: str) -> list:
    return [e for e in await service.events(issue) if e.type == "HotlineFeedbackSent"]


async def test_the_work_order_deadlines_drive_the_escalation_timers(service: Service) -> None:
    order = work_order(
        "GD20250414003",
        response_deadline=(now() + timedelta(seconds=1)).isoformat(),
        resolution_deadline=(now() + timedelta(seconds=2)).isoformat(),
    )
    r = await service.client.post(ORDERS, json=order, headers=service.token("hotline"))
    assert r.status_code == 201

    async def both_overdue() -> list:
        marks = [e for e in await service.events("hl-GD20250414003") if e.type == "IssueOverdue"]
        return marks if len(marks) == 2 else []

    marks = await eventually(both_overdue, timeout=30, what="response and resolution deadlines passed")
    assert [m.data.timer.split(":")[0] for m in marks] == ["response", "resolution"]
    climbs = [e.data for e in await service.events("hl-GD20250414003") if e.type == "IssueEscalated"]
    assert [(c.reason, c.from_level, c.to_level) for c in climbs] == [
        ("overdue", "building", "compound"),
        ("overdue", "compound", "community"),
    ]


async def test_a_feedback_the_hotline_refuses_is_kept_dead_and_the_next_one_goes(
    settings: Settings, receiver: HotlineReceiver
) -> None:
    await receiver.start()
    receiver.refuse["accepted"] = 400  # the platform will never take this one
    s = make_settings(settings, hotline_callback_url=receiver.url, hotline_retry_attempts=4)
    app = build_app(s)
    async with running(app) as client:
        service = Service(client, app, s)
        hotline = service.token("hotline")
        assert (await client.post(ORDERS, json=work_order("GD20250414005"), headers=hotline)).status_code == 201
        issue = "hl-GD20250414005"
        v = (await service.act(issue, "accept", 2))["version"]
        await service.act(issue, "assign", v, assignee_kind="volunteer_team", assignee_id="dog-walkers")

        async def settled() -> list[dict]:
            feedback = (await client.get(f"{ORDERS}/GD20250414005", headers=hotline)).json()["feedback"]
            return feedback if len(feedback) == 2 and feedback[1]["sent_at"] else []

        accepted, _assigned = await eventually(settled, timeout=30, what="the next feedback past the refused one")
        # a 4xx is the platform's final word: one POST, its status as the reason, no text of its answer
        assert (accepted["attempts"], accepted["last_error"], accepted["sent_at"]) == (1, "HTTP 400", None)
        assert accepted["dead_at"] is not None
        assert receiver.statuses("GD20250414005") == ["accepted", "assigned"]
        owed = (await client.get("/readyz")).json()["outboxes"]
        assert owed == [{"outbox": "hotline_feedback", "pending": 0, "scheduled": 0, "held": 0, "dead": 1}]


async def test_a_hotline_address_inside_is_not_called(settings: Settings, receiver: HotlineReceiver) -> None:
    await receiver.start()
    s = make_settings(settings, hotline_callback_url=receiver.url, outbound_allowed_targets=[])
    app = build_app(s)
    async with running(app) as client:
        service = Service(client, app, s)
        hotline = service.token("hotline")
        assert (await client.post(ORDERS, json=work_order("GD20250414006"), headers=hotline)).status_code == 201
        await service.act("hl-GD20250414006", "accept", 2)

        async def dead() -> dict:
            feedback = (await client.get(f"{ORDERS}/GD20250414006", headers=hotline)).json()["feedback"]
            return feedback[0] if feedback and feedback[0]["dead_at"] else {}

        row = await eventually(dead, timeout=30, what="the feedback refused")
        assert (row["attempts"], row["last_error"]) == (0, "target refused (loopback address)")
        assert receiver.received == []
