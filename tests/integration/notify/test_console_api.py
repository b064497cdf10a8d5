"""What the console's directory-and-routing page reads and does: the routing rules as data, a test
message to the police duty line through the real outbox, and one notification's whole story — its
tries, its errors and the police desk's acknowledgement."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from services.notify.app import build_app
from services.notify.bootstrap import default_rules
from services.notify.receiver import LocalReceiver
from services.notify.settings import NotifySettings
from shared.eventstore import EventStore
from tests.harness import auth, eventually, running

from .scenario import COMMUNITY, notify_events, register_directory, report_and_escalate
from .test_delivery import daytime_noise

BASE = f"/v1/communities/{COMMUNITY}"


def received(receiver: LocalReceiver, *paths: str) -> Callable[[], Awaitable[bool]]:
    """A check for ``eventually``: the receiver got something on each of ``paths``."""

    async def check() -> bool:
        return all(receiver.on(path) for path in paths)

    return check


async def test_the_routing_rules_read_as_data_with_whom_each_reaches(
    notify_settings: NotifySettings, receiver: LocalReceiver
) -> None:
    secretary = auth(notify_settings, "secretary", community=COMMUNITY)
    async with running(build_app(notify_settings)) as client:
        await register_directory(client, notify_settings, receiver)
        r = await client.get(f"{BASE}/routing", headers=secretary)
        assert r.status_code == 200, r.text
        table = r.json()
        assert table["first_match_decides"] is True
        assert [rule["name"] for rule in table["rules"]] == [rule.name for rule in default_rules().rules]
        assert [rule["position"] for rule in table["rules"]] == list(range(1, len(table["rules"]) + 1))
        night = table["rules"][0]
        assert night["name"] == "night_noise_to_police_duty_line"
        assert night["on"] == ["escalated"] and night["urgent"] is True and night["ack"] is True
        assert night["matches"] == {
            "category": ["conflicts_disputes"],
            "subcategory": ["late_night_noise", "night_noise", "noise"],
            "min_severity": "high",
            "hours": "22:00-06:00",
            "target": None,
            "to_level": None,
            "reason": None,
            "place": None,
        }
        assert night["channels"] == ["webhook", "sms"]
        assert night["send_to"] == [
            {
                "kind": "police",
                "desk": "duty_line",
                "ack_deadline_seconds": notify_settings.ack_deadline("police"),
                "recipients": [
                    {"recipient_id": "police-duty", "name": "中南路派出所值班室", "channels": ["webhook", "sms"]}
                ],
            }
        ]
        pets = next(rule for rule in table["rules"] if rule["name"] == "pet_conflicts_to_property_and_secretary")
        assert [(s["kind"], s["ack_deadline_seconds"]) for s in pets["send_to"]] == [
            ("property_management", None),
            ("secretary", None),
        ]  # no acknowledgement asked: no deadline
        assert [x["recipient_id"] for x in pets["send_to"][1]["recipients"]] == ["secretary"]

        ops = auth(notify_settings, "ops")
        assert (await client.get(f"{BASE}/routing", headers=ops)).status_code == 200
        street = auth(notify_settings, "street_admin", street="zhongnanlu")
        assert (await client.get(f"{BASE}/routing", headers=street)).status_code == 403


async def test_a_test_message_reaches_the_police_duty_line_once_and_asks_no_acknowledgement(
    notify_settings: NotifySettings, receiver: LocalReceiver
) -> None:
    secretary = auth(notify_settings, "secretary", community=COMMUNITY, sub="sec-liu")
    async with running(build_app(notify_settings)) as client:
        await register_directory(client, notify_settings, receiver, only={"police-duty"})
        url = f"{BASE}/recipients/police-duty/test"
        r = await client.post(url, headers={**secretary, "Idempotency-Key": "t-2026-12-08"})
        assert r.status_code == 202, r.text
        sent = r.json()
        assert sent["test_id"] == "t-2026-12-08" and sent["duplicate"] is False
        assert [n["channel"] for n in sent["notifications"]] == ["webhook", "sms"]
        assert sent["notification_id"] == sent["notifications"][0]["notification_id"]

        await eventually(received(receiver, "/webhook/police-duty", "/sms"), timeout=30, what="webhook and SMS")
        [webhook] = receiver.on("/webhook/police-duty")
        assert webhook.json()["kind"] == "test" and webhook.delivery_id == sent["notification_id"]

        async def delivered() -> bool:
            r = await client.get(f"{BASE}/notifications", headers=secretary)
            return {n["state"] for n in r.json()["notifications"]} == {"delivered"}

        await eventually(delivered, timeout=30, what="both test notifications delivered")
        # The same key again (the console's retry, a double click) sends nothing more.
        again = await client.post(url, headers={**secretary, "Idempotency-Key": "t-2026-12-08"})
        assert again.status_code == 202 and again.json()["duplicate"] is True
        assert [n["notification_id"] for n in again.json()["notifications"]] == [
            n["notification_id"] for n in sent["notifications"]
        ]
        assert {n["state"] for n in again.json()["notifications"]} == {"delivered"}
        same_by_body = await client.post(url, json={"test_id": "t-2026-12-08"}, headers=secretary)
        assert same_by_body.json()["duplicate"] is True
        listed = (await client.get(f"{BASE}/notifications", headers=secretary)).json()["notifications"]
        assert len(listed) == 2 and {(n["kind"], n["rule"], n["ack_id"]) for n in listed} == {("test", "test", None)}
        assert (await client.get(f"{BASE}/acks", headers=secretary)).json()["acks"] == []  # no watch
        detail = (await client.get(f"{BASE}/notifications/{sent['notification_id']}", headers=secretary)).json()
        assert detail["test"] is True and detail["acknowledgement"] is None

        other = await client.post(url, json={"test_id": "t-2"}, headers=secretary)
        assert other.json()["duplicate"] is False and other.json()["notification_id"] != sent["notification_id"]
        clash = await client.post(url, json={"test_id": "t-3"}, headers={**secretary, "Idempotency-Key": "t-4"})
        assert clash.status_code == 422 and clash.json()["error"]["field"] == "test_id"
        missing = await client.post(f"{BASE}/recipients/nobody/test", headers=secretary)
        assert missing.status_code == 404 and missing.json()["error"]["field"] == "recipient_id"
        ops = auth(notify_settings, "ops")
        assert (await client.post(url, headers=ops)).status_code == 403


async def test_a_notifications_detail_shows_each_try_its_error_and_the_acknowledgement(
    notify_settings: NotifySettings, receiver: LocalReceiver, feed: EventStore
) -> None:
    secretary = auth(notify_settings, "secretary", community=COMMUNITY)
    async with running(build_app(notify_settings)) as client:
        await register_directory(client, notify_settings, receiver, only={"police-officer"})
        receiver.failing["/webhook/police-officer"] = 503  # the station's system is struggling
        await report_and_escalate(feed, *daytime_noise(1))
        await eventually(
            lambda: notify_events(feed, notify_settings, "NotificationFailed"), timeout=30, what="a failed try"
        )
        receiver.failing.clear()
        await eventually(received(receiver, "/webhook/police-officer"), timeout=30, what="delivered once back")
        [listed] = (await client.get(f"{BASE}/notifications", headers=secretary)).json()["notifications"]
        nid = listed["notification_id"]

        async def detail() -> dict:
            r = await client.get(f"{BASE}/notifications/{nid}", headers=secretary)
            found = r.json()
            # the row's state is marked by a group commit just after the try's events: wait for both
            delivered = found["deliveries"] and found["deliveries"][-1]["outcome"] == "delivered"
            return found if delivered and found["state"] == "delivered" else {}

        found = await eventually(detail, timeout=30, what="the delivered try in the detail")
        assert found["kind"] == "escalation" and found["test"] is False and found["state"] == "delivered"
        *failed, last = found["deliveries"]
        assert failed and all(t["outcome"] == "failed" and "503" in t["error"] for t in failed)
        assert [t["attempt"] for t in found["deliveries"]] == list(range(1, len(failed) + 2))
        assert last["error"] is None and last["sent_at"] <= last["finished_at"]
        watch = found["acknowledgement"]
        assert watch["state"] == "open" and watch["acknowledged_by"] is None
        waited = datetime.fromisoformat(watch["deadline_at"]) - datetime.fromisoformat(watch["starts_at"])
        assert waited.total_seconds() == notify_settings.ack_deadline("police")

        police = auth(notify_settings, "agency", community=COMMUNITY, agency="zhongnanlu-police", sub="officer-wang")
        assert (await client.post(f"{BASE}/notifications/{nid}/ack", headers=police)).status_code == 200
        acked = (await client.get(f"{BASE}/notifications/{nid}", headers=secretary)).json()["acknowledgement"]
        assert (acked["state"], acked["acknowledged_by"], acked["acknowledged_via"]) == (
            "acknowledged",
            "officer-wang",
            "api",
        )
        assert acked["closed_at"] is not None
        r = await client.get(f"{BASE}/notifications/n-nothing", headers=secretary)
        assert r.status_code == 404 and r.json()["error"]["field"] == "notification_id"
        assert (await client.get(f"{BASE}/notifications/{nid}", headers=police)).status_code == 403
