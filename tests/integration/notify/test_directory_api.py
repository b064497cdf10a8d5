"""The directory API: who may change it, what it refuses, what it never shows, rotating secrets."""

from __future__ import annotations

from services.notify.app import build_app
from services.notify.receiver import LocalReceiver
from services.notify.settings import NotifySettings
from shared.eventstore import EventStore
from tests.harness import auth, eventually, running

from .scenario import COMMUNITY, WEBHOOK_SECRETS, WECOM_KEYS, directory, report_and_escalate
from .test_delivery import daytime_noise

RECIPIENTS = f"/v1/communities/{COMMUNITY}/recipients"


async def test_the_secretary_keeps_the_directory_and_secrets_are_never_shown(
    notify_settings: NotifySettings, receiver: LocalReceiver
) -> None:
    secretary = auth(notify_settings, "secretary", community=COMMUNITY)
    body = directory(receiver)["property"]
    async with running(build_app(notify_settings)) as client:
        created = await client.put(f"{RECIPIENTS}/property", json=body, headers=secretary)
        assert created.status_code == 201
        again = await client.put(f"{RECIPIENTS}/property", json=body, headers=secretary)
        assert again.status_code == 200 and again.json()["channels"] == created.json()["channels"]
        wecom = again.json()["channels"]["wecom"]["url"]
        assert WECOM_KEYS["property"] not in wecom and wecom.endswith(f"key=…{WECOM_KEYS['property'][-4:]}")

        police = directory(receiver)["police-duty"]
        shown = (await client.put(f"{RECIPIENTS}/police-duty", json=police, headers=secretary)).json()
        assert shown["channels"]["webhook"]["secret_hint"] == f"…{WEBHOOK_SECRETS['police-duty'][-4:]}"
        # Updating without the secret keeps it.
        without = {**police, "channels": {"webhook": {"url": police["channels"]["webhook"]["url"]}}}
        kept = (await client.put(f"{RECIPIENTS}/police-duty", json=without, headers=secretary)).json()
        assert kept["channels"]["webhook"]["secret_hint"] == shown["channels"]["webhook"]["secret_hint"]
        listing = (await client.get(RECIPIENTS, headers=secretary)).text
        assert WEBHOOK_SECRETS["police-duty"] not in listing and WECOM_KEYS["property"] not in listing

        assert (await client.delete(f"{RECIPIENTS}/property", headers=secretary)).status_code == 204
        assert (await client.get(f"{RECIPIENTS}/property", headers=secretary)).status_code == 404
        assert (await client.delete(f"{RECIPIENTS}/property", headers=secretary)).status_code == 204


async def test_bad_entries_are_refused_naming_the_field_and_only_the_right_roles_may_write(
    notify_settings: NotifySettings, receiver: LocalReceiver
) -> None:
    secretary = auth(notify_settings, "secretary", community=COMMUNITY)
    async with running(build_app(notify_settings)) as client:
        cases = [
            (
                {"kind": "police", "name": "x", "channels": {"email": {"address": "not-an-address"}}},
                "channels.email.address",
            ),
            ({"kind": "fire_brigade", "name": "x", "channels": {"sms": {"number": "+8612345678"}}}, "kind"),
            ({"kind": "police", "name": "x", "channels": {}}, "channels"),
            (
                {"kind": "police", "name": "x", "channels": {"webhook": {"url": "http://127.0.0.1:1/h"}}},
                "channels.webhook.secret",
            ),
            (
                {
                    "kind": "police",
                    "name": "x",
                    "quiet_hours": {"start": "22:00", "end": "22:00"},
                    "channels": {"sms": {"number": "+8612345678"}},
                },
                "quiet_hours",
            ),
        ]
        for body, field in cases:
            response = await client.put(f"{RECIPIENTS}/bad", json=body, headers=secretary)
            assert response.status_code == 422, (field, response.text)
            assert response.json()["error"]["field"] == field, response.json()

        ok = directory(receiver)["secretary"]
        assert (await client.put(f"{RECIPIENTS}/s", json=ok)).status_code == 401
        worker = auth(notify_settings, "grid_worker", community=COMMUNITY, grid="g1", worker_id="w07")
        assert (await client.put(f"{RECIPIENTS}/s", json=ok, headers=worker)).status_code == 403
        elsewhere = auth(notify_settings, "secretary", community="another-community")
        assert (await client.put(f"{RECIPIENTS}/s", json=ok, headers=elsewhere)).status_code == 403
        unknown_street = auth(notify_settings, "street_admin", street="zhongnanlu")
        assert (await client.get(RECIPIENTS, headers=unknown_street)).status_code == 403


async def test_a_rotated_webhook_secret_verifies_on_either_side_during_its_grace_period(
    notify_settings: NotifySettings, receiver: LocalReceiver, feed: EventStore
) -> None:
    secretary = auth(notify_settings, "secretary", community=COMMUNITY)
    old, new, newer = WEBHOOK_SECRETS["police-officer"], "whsec-rotated-2025-04-aaaaaaaaaaaa", "whsec-third-bbbbbbbbbb"
    app = build_app(notify_settings)
    async with running(app) as client:
        body = directory(receiver)["police-officer"]
        assert (await client.put(f"{RECIPIENTS}/police-officer", json=body, headers=secretary)).status_code == 201
        hook = "/webhook/police-officer"

        rotated = await client.post(
            f"{RECIPIENTS}/police-officer/webhook-secret",
            json={"secret": new, "grace_seconds": 3600},
            headers=secretary,
        )
        assert rotated.status_code == 200 and rotated.json()["channels"]["webhook"]["secret_hint"] == f"…{new[-4:]}"
        assert rotated.json()["channels"]["webhook"]["previous_secret_valid_until"] is not None

        receiver.webhook_secrets["police-officer"] = [new]  # the police switched over already
        await report_and_escalate(feed, *daytime_noise(1))
        await eventually(lambda: _n(receiver.on(hook), 1), timeout=30, what="verified with the new secret")
        receiver.webhook_secrets["police-officer"] = [old]  # …or not yet: still fine within the grace period
        await report_and_escalate(feed, *daytime_noise(2))
        await eventually(lambda: _n(receiver.on(hook), 2), timeout=30, what="verified with the old secret")
        signatures = receiver.on(hook)[1].headers["gridwork-signature"].split(",")
        assert len(signatures) == 2 and all(s.startswith("v1=") for s in signatures)

        # Rotated again without grace: only the newest secret signs; a receiver still on `new` refuses.
        await client.post(
            f"{RECIPIENTS}/police-officer/webhook-secret", json={"secret": newer, "grace_seconds": 0}, headers=secretary
        )
        receiver.webhook_secrets["police-officer"] = [new]
        await report_and_escalate(feed, *daytime_noise(3))
        await eventually(lambda: _n(receiver.refused, 1, at_least=True), timeout=30, what="a refused signature")
        assert receiver.refused[0] == (hook, "signature does not match")
        assert len(receiver.on(hook)) == 2


async def _n(items: list, n: int, at_least: bool = False) -> list | None:
    return items if (len(items) >= n if at_least else len(items) == n) else None
