"""The notify domain as stories from DOMAIN.md, without servers: acknowledgements, deliveries and the
directory's secrets decided and folded by pure functions."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from services.notify.domain import acknowledgement, delivery
from services.notify.domain.acknowledgement import AcknowledgeNotification, AckWatch, ReportUnacknowledged
from services.notify.domain.delivery import NotificationDelivery, RecordDelivery, RecordFailure
from services.notify.domain.digest import digest_id, missed_items
from services.notify.domain.directory import (
    Channels,
    RotateWebhookSecret,
    WebhookChannel,
    WecomChannel,
    hint,
    kept_secrets,
    mask_url,
    rotated_secrets,
    secret_hints,
    signing_secrets,
)
from services.notify.domain.ids import ack_id, notification_id
from shared.errors import Conflict, Forbidden, Invalid
from shared.events import SHANGHAI
from shared.events.notify import (
    NotificationAcknowledged,
    NotificationDeadLettered,
    NotificationDelivered,
    NotificationFailed,
    NotificationSent,
    NotificationUnacknowledged,
)

NOISE = uuid.UUID("01960a3c-8d00-7000-8000-000000000001")  # the night-time noise escalation
NIGHT = datetime(2025, 4, 14, 23, 45, tzinfo=SHANGHAI)


def police_watch(**changes: object) -> AckWatch:
    """The police duty line's watch over the night-time noise escalation (phase 2 east grid)."""
    watch = AckWatch(
        community="bairuijing",
        notification_id=notification_id(str(NOISE), "police-duty", "sms"),
        channel="sms",
        recipient_id="police-duty",
        subject_ref="i-noise",
        ack_id=ack_id(str(NOISE), "police-duty"),
        recipient_agency="zhongnanlu-police",
        causation_id=NOISE,
        correlation_id=NOISE,
    )
    return replace(watch, **changes)


def by_police(
    at: datetime = NIGHT + timedelta(minutes=4), agency: str | None = "zhongnanlu-police"
) -> AcknowledgeNotification:
    return AcknowledgeNotification(
        "bairuijing", police_watch().notification_id, actor="officer-li", via="api", at=at, agency=agency
    )


# ------------------------------------------------------------------------------------ acknowledgements


def test_the_police_duty_line_acknowledges_the_night_time_noise_once() -> None:
    watch = police_watch()
    (event,) = acknowledgement.decide(watch, by_police())
    assert isinstance(event, NotificationAcknowledged)
    assert event.aggregate_id == watch.ack_id and event.actor == "officer-li"
    assert event.occurred_at == NIGHT + timedelta(minutes=4)  # the time came with the command
    assert (event.data.notification_id, event.data.channel, event.data.subject_ref) == (
        watch.notification_id,
        "sms",
        "i-noise",
    )
    assert event.causation_id == NOISE and event.correlation_id == NOISE

    acknowledged = acknowledgement.evolve(watch, event)
    assert (acknowledged.state, acknowledged.version) == ("acknowledged", 1)
    # The duty officer taps the SMS link as well: the first acknowledgement stands, nothing new.
    assert acknowledgement.decide(acknowledged, by_police(agency=None)) == []


def test_the_property_company_cannot_acknowledge_what_went_to_the_police() -> None:
    with pytest.raises(Forbidden):
        acknowledgement.decide(police_watch(), by_police(agency="bairuijing-property"))


def test_a_signed_link_needs_no_agency_claim() -> None:
    assert len(acknowledgement.decide(police_watch(), by_police(agency=None))) == 1


def test_a_notification_that_asks_for_no_acknowledgement_refuses_one() -> None:
    # The pet-conflict notice to the secretary is for information only.
    with pytest.raises(Conflict):
        acknowledgement.decide(police_watch(ack_id=None, recipient_agency=None), by_police(agency=None))


def test_an_escalation_nobody_acknowledged_is_reported_at_its_deadline_and_only_once() -> None:
    watch = police_watch()
    deadline = NIGHT + timedelta(minutes=15)
    missed = ReportUnacknowledged(at=deadline, waited_seconds=900.0004)
    (event,) = acknowledgement.decide(watch, missed)
    assert isinstance(event, NotificationUnacknowledged)
    assert event.occurred_at == deadline and event.data.waited_seconds == 900.0
    # Reported again after a crash: the same event id, which the store recognises as a duplicate.
    assert acknowledgement.decide(watch, missed)[0].id == event.id

    reported = acknowledgement.evolve(watch, event)
    assert reported.state == "unacknowledged"
    assert acknowledgement.decide(reported, missed) == []
    # The police answer late: still recorded, and the watch ends acknowledged.
    (late,) = acknowledgement.decide(reported, by_police(at=deadline + timedelta(minutes=3)))
    assert acknowledgement.evolve(reported, late).state == "acknowledged"


def test_a_resolved_issue_needs_no_acknowledgement_any_more() -> None:
    moot = police_watch(state="moot")
    assert acknowledgement.decide(moot, ReportUnacknowledged(at=NIGHT, waited_seconds=900)) == []


# ------------------------------------------------------------------------------------ deliveries


def police_webhook() -> NotificationDelivery:
    return NotificationDelivery(
        notification_id=notification_id(str(NOISE), "police-duty", "webhook"),
        community="bairuijing",
        recipient_id="police-duty",
        channel="webhook",
        subject_ref="i-noise",
        causation_id=NOISE,
        correlation_id=NOISE,
    )


def test_the_police_webhook_delivered_at_the_first_try_records_sent_then_delivered() -> None:
    started, confirmed = NIGHT, NIGHT + timedelta(milliseconds=40)
    sent, delivered = delivery.decide(police_webhook(), RecordDelivery(1, started, confirmed))
    assert isinstance(sent, NotificationSent) and isinstance(delivered, NotificationDelivered)
    assert (sent.occurred_at, delivered.occurred_at) == (started, confirmed)
    assert sent.data.attempt == delivered.data.attempt == 1 and sent.causation_id == NOISE
    # Recorded again after a crash between the send and its record: the same events, by id.
    again = delivery.decide(police_webhook(), RecordDelivery(1, started, confirmed))
    assert [e.id for e in again] == [sent.id, delivered.id]

    done = delivery.fold([sent, delivered], police_webhook())
    assert (done.attempts, done.version, done.outcome) == (1, 2, "delivered")
    assert delivery.decide(done, RecordDelivery(2, started, confirmed)) == []


def test_a_revoked_wecom_robot_is_dead_lettered_with_its_error() -> None:
    robot = replace(police_webhook(), channel="wecom", recipient_id="property")
    refused = RecordFailure(3, NIGHT, NIGHT + timedelta(seconds=1), "wecom: errcode 93000", final=True)
    sent, failed, dead = delivery.decide(robot, refused)
    assert [type(e) for e in (sent, failed, dead)] == [NotificationSent, NotificationFailed, NotificationDeadLettered]
    assert failed.data.error == dead.data.error == "wecom: errcode 93000"
    assert delivery.fold([sent, failed, dead], robot).outcome == "dead"


def test_a_message_that_never_reached_its_channel_records_only_the_failure() -> None:
    # The recipient left the directory before the send: nothing was handed to a channel.
    (failed,) = delivery.decide(
        police_webhook(), RecordFailure(1, NIGHT, NIGHT, "recipient is no longer in the directory", tried=False)
    )
    assert isinstance(failed, NotificationFailed)


def test_a_recovered_notification_counts_its_tries_from_its_history() -> None:
    first = delivery.decide(police_webhook(), RecordFailure(1, NIGHT, NIGHT, "webhook: HTTP 503"))
    second = delivery.decide(police_webhook(), RecordFailure(2, NIGHT, NIGHT, "webhook: HTTP 503"))
    folded = delivery.fold([*first, *second], police_webhook())
    assert (folded.attempts, folded.version, folded.outcome) == (2, 4, None)


# ------------------------------------------------------------------------------------ directory secrets

SECRET = "whsec-police-duty-0123456789abcdef"
NEW_SECRET = "whsec-police-duty-rotated-987654"


def test_a_new_webhook_needs_its_secret_and_an_update_without_one_keeps_it() -> None:
    webhook = Channels(webhook=WebhookChannel(url="https://police.example/hook"))
    with pytest.raises(Invalid):
        kept_secrets(webhook, {})
    kept = kept_secrets(webhook, {"webhook_secret": SECRET})
    assert kept == {"webhook_secret": SECRET}
    assert secret_hints(kept)["webhook_secret"] == "…cdef"


def test_a_new_secret_replaces_the_old_one_without_grace_and_a_dropped_channel_loses_its_secrets() -> None:
    rotating = {"webhook_secret": SECRET, "webhook_previous": "old", "webhook_previous_until": NIGHT.isoformat()}
    replaced = kept_secrets(Channels(webhook=WebhookChannel(url="https://p.example/h", secret=NEW_SECRET)), rotating)
    assert replaced == {"webhook_secret": NEW_SECRET}
    robot = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=3f1c2e4d-wuye00000001"
    only_robot = kept_secrets(Channels(wecom=WecomChannel(url=robot)), rotating)
    assert only_robot == {"wecom_url": robot}
    assert secret_hints(only_robot)["wecom_url"] == "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=…0001"


def test_a_wecom_robot_saved_without_its_url_keeps_the_one_it_has_and_a_new_one_needs_it() -> None:
    robot = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=3f1c2e4d-wuye00000001"
    kept = kept_secrets(Channels(wecom=WecomChannel()), {"wecom_url": robot})
    assert kept == {"wecom_url": robot}
    with pytest.raises(Invalid):
        kept_secrets(Channels(wecom=WecomChannel()), {})


def test_during_a_rotation_the_previous_key_signs_until_its_grace_ends() -> None:
    rotate = RotateWebhookSecret("bairuijing", "police-duty", NEW_SECRET, grace=timedelta(days=1), at=NIGHT)
    secrets = rotated_secrets({"webhook_secret": SECRET}, rotate)
    assert signing_secrets(secrets, NIGHT + timedelta(hours=23)) == (NEW_SECRET, SECRET)
    assert signing_secrets(secrets, NIGHT + timedelta(days=1, seconds=1)) == (NEW_SECRET,)
    # A retried rotation to the key already in use does not cut the grace short.
    assert rotated_secrets(secrets, replace(rotate, at=NIGHT + timedelta(hours=5))) == secrets


def test_only_a_webhook_can_be_rotated() -> None:
    rotate = RotateWebhookSecret("bairuijing", "property", NEW_SECRET, grace=timedelta(0), at=NIGHT)
    with pytest.raises(Invalid):
        rotated_secrets({"wecom_url": "https://robot.example/send?key=k"}, rotate)


def test_secrets_are_shown_by_their_last_four_characters_only() -> None:
    assert hint(SECRET) == "…cdef" and hint(None) is None
    assert mask_url("https://robot.example/send?key=abcdefgh&debug") == "https://robot.example/send?key=…efgh&debug"


# ------------------------------------------------------------------------------------ digest


def test_the_daily_digest_lists_only_what_a_worker_missed_and_is_one_per_community_and_day() -> None:
    items = [{"item": "hours_in_grid", "met": True}, {"item": "special_visit", "met": False}]
    assert missed_items(items) == ["special_visit"]
    assert digest_id("bairuijing", NIGHT.date()) == "digest-bairuijing-20250414"
