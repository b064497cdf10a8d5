"""Acknowledgement: the police do not get to ignore an escalation silently."""

from __future__ import annotations

from services.notify.app import build_app
from services.notify.receiver import LocalReceiver
from shared.events import Place
from shared.eventstore import EventStore
from shared.settings import Settings
from tests.harness import auth, eventually, running

from .conftest import notify_settings_for
from .scenario import (
    COMMUNITY,
    Inbox,
    at,
    escalated,
    notify_events,
    register_directory,
    report_and_escalate,
    reported,
)


def night_noise(issue_id: str, minute: int) -> tuple:
    issue = reported(
        issue_id,
        "conflicts_disputes",
        "noise",
        "2期东网格深夜喊麦，邻居投诉",
        severity="high",
        place=Place(compound="百瑞景", phase="2", grid="phase2-east"),
        when=at(f"2025-04-14 23:{minute:02d}"),
    )
    return issue, escalated(issue, to_level="community", target="police", when=at(f"2025-04-14 23:{minute + 5:02d}"))


async def test_an_unacknowledged_police_escalation_is_reported_so_it_climbs(
    settings: Settings, receiver: LocalReceiver, smtp: Inbox, feed: EventStore
) -> None:
    config = notify_settings_for(settings, receiver, smtp, notify_ack_deadline_seconds={"police": 1.0})
    app = build_app(config)
    async with running(app) as client:
        await register_directory(client, config, receiver, only={"police-duty"})
        await report_and_escalate(feed, *night_noise("noise-unacked", 40))
        await eventually(lambda: _n(receiver.on("/webhook/police-duty"), 1), timeout=30, what="the duty line told")

        unacked = await eventually(
            lambda: notify_events(feed, config, "NotificationUnacknowledged"), timeout=30, what="unacknowledged"
        )
        (event,) = unacked
        assert event.data.subject_ref == "noise-unacked"  # the issues service escalates this issue one level
        assert event.data.recipient == "police-duty" and event.data.channel == "webhook"
        assert event.data.waited_seconds >= 1.0

        # The watch's row commits just after its event is appended (the event goes first, so a
        # crash between the two re-reports it, idempotently): the list shows it a moment later.
        async def watch_states() -> list[str] | None:
            acks = await client.get(
                f"/v1/communities/{COMMUNITY}/acks", headers=auth(config, "secretary", community=COMMUNITY)
            )
            states = [a["state"] for a in acks.json()["acks"]]
            return states if states != ["open"] else None

        assert await eventually(watch_states, timeout=10, what="the watch closed") == ["unacknowledged"]
        # Reported once, though the timer keeps ticking.
        assert len(await notify_events(feed, config, "NotificationUnacknowledged")) == 1


async def test_the_duty_officer_acknowledges_through_the_signed_link_and_nothing_climbs(
    settings: Settings, receiver: LocalReceiver, smtp: Inbox, feed: EventStore
) -> None:
    config = notify_settings_for(settings, receiver, smtp, notify_ack_deadline_seconds={"police": 4.0})
    app = build_app(config)
    async with running(app) as client:
        await register_directory(client, config, receiver, only={"police-duty"})
        await report_and_escalate(feed, *night_noise("noise-acked", 40))
        (first,) = await eventually(lambda: _n(receiver.on("/webhook/police-duty"), 1), timeout=30)
        link = first.json()["ack_url"].removeprefix(config.notify_public_url)

        page = await client.get(link, headers={"Accept": "text/html"})
        assert page.status_code == 200 and "确认收到" in page.text  # a GET only shows the page
        assert (await client.get(link)).json()["ack_state"] == "open"
        acked = await client.post(link)
        assert acked.status_code == 200 and acked.json()["state"] == "acknowledged"
        again = await client.post(link)
        assert again.json()["already_acknowledged"] is True

        (ack,) = await notify_events(feed, config, "NotificationAcknowledged")
        assert ack.data.subject_ref == "noise-acked" and ack.data.notification_id == first.json()["notification_id"]

        # A later escalation nobody acknowledges is reported; the acknowledged one, due earlier, never is.
        await report_and_escalate(feed, *night_noise("noise-later", 50))
        unacked = await eventually(
            lambda: notify_events(feed, config, "NotificationUnacknowledged"), timeout=30, what="the later one"
        )
        assert [e.data.subject_ref for e in unacked] == ["noise-later"]


async def test_an_agency_acknowledges_by_api_only_its_own_notifications(
    settings: Settings, receiver: LocalReceiver, smtp: Inbox, feed: EventStore
) -> None:
    config = notify_settings_for(settings, receiver, smtp)
    app = build_app(config)
    async with running(app) as client:
        await register_directory(client, config, receiver, only={"police-duty"})
        await report_and_escalate(feed, *night_noise("noise-api", 40))
        (first,) = await eventually(lambda: _n(receiver.on("/webhook/police-duty"), 1), timeout=30)
        nid = first.json()["notification_id"]
        url = f"/v1/communities/{COMMUNITY}/notifications/{nid}/ack"

        property_company = auth(config, "agency", community=COMMUNITY, agency="bairuijing-property")
        assert (await client.post(url, headers=property_company)).status_code == 403
        # each agency lists what was sent to it, and only that (the console's acknowledge button)
        mine = f"/v1/communities/{COMMUNITY}/agency/notifications"
        listed = await client.get(mine, headers=property_company, params={"subject_ref": "noise-api"})
        assert listed.status_code == 200 and listed.json()["notifications"] == []
        police_desk = auth(config, "agency", community=COMMUNITY, agency="zhongnanlu-police")
        rows = (await client.get(mine, headers=police_desk, params={"subject_ref": "noise-api"})).json()
        assert {r["recipient_id"] for r in rows["notifications"]} == {"police-duty"}  # one per channel
        (row,) = [r for r in rows["notifications"] if r["notification_id"] == nid]
        assert row["notification_id"] == nid and row["ack_state"] == "open"
        nameless = auth(config, "agency", community=COMMUNITY)
        assert (await client.post(url, headers=nameless)).json()["error"]["field"] == "agency"
        assert (await client.post(url, headers=auth(config, "grid_worker", community=COMMUNITY))).status_code == 403
        police = auth(config, "agency", community=COMMUNITY, agency="zhongnanlu-police", sub="officer-wang")
        answer = await client.post(url, headers=police)
        assert answer.status_code == 200, answer.text
        assert answer.json()["acknowledged_by"] == "officer-wang" and answer.json()["acknowledged_via"] == "api"

        forged = first.json()["ack_url"].removeprefix(config.notify_public_url)[:-4] + "AAAA"
        refused = await client.post(forged)
        assert refused.status_code == 422 and refused.json()["error"]["field"] == "token"


async def _n(items: list, n: int) -> list | None:
    return items if len(items) == n else None
