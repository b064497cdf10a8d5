"""Pure pieces: routing rules, quiet hours, backoff, signed webhooks and signed acknowledgement links."""

from __future__ import annotations

import random
import time as clock
from datetime import datetime, time

import pytest

from services.notify.bootstrap import default_rules
from services.notify.channels.webhook import ReplayGuard, SignatureError, sign, verify_signature
from services.notify.domain.delivery import backoff_seconds
from services.notify.domain.digest import digest_due
from services.notify.domain.directory import QuietHours, Recipient, send_at
from services.notify.domain.routing import Facts, RuleError, parse_rules, select
from services.notify.domain.templates import render
from services.notify.signing import LinkError, make_token, read_token
from shared.events import SHANGHAI


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)


def recipient(rid: str, kind: str, desk: str | None = None, channels: tuple = ("webhook", "sms"), **kw) -> Recipient:
    return Recipient(
        community="bairuijing", recipient_id=rid, kind=kind, name=rid, desk=desk, channels=list(channels), **kw
    )  # type: ignore[arg-type]


BAIRUIJING = [
    recipient("police-duty", "police", "duty_line"),
    recipient("police-officer", "police", "community_officer", ("webhook",)),
    recipient("property", "property_management", channels=("wecom", "email")),
    recipient("secretary", "secretary", channels=("email", "wecom")),
]


def route(facts: Facts) -> list[tuple[str, tuple[str, ...]]]:
    rule = default_rules().match(facts)
    assert rule is not None
    return [(r.recipient.recipient_id, r.channels) for r in select(rule, BAIRUIJING, facts.place)]


def test_night_time_noise_goes_to_the_police_duty_line_and_daytime_noise_to_the_community_officer() -> None:
    night = Facts(
        on="escalated",
        at=local("2025-04-14 23:45"),
        category="conflicts_disputes",
        subcategory="noise",
        severity="high",
        target="police",
        to_level="community",
        reason="severity",
    )
    assert route(night) == [("police-duty", ("webhook", "sms"))]
    assert default_rules().match(night).urgent  # type: ignore[union-attr]
    day = Facts(**{**night.__dict__, "at": local("2025-04-14 15:00")})
    assert route(day) == [("police-officer", ("webhook",))]
    quiet_noise = Facts(**{**night.__dict__, "severity": "medium"})
    assert route(quiet_noise) == [("police-officer", ("webhook",))]


def test_stairwell_clutter_goes_to_property_management_and_missed_quotas_to_the_secretary_digest() -> None:
    clutter = Facts(
        on="escalated",
        at=local("2025-04-15 09:20"),
        category="safety_hazards",
        subcategory="Stairwell_Clutter",
        target="property_management",
        to_level="compound",
    )
    assert route(clutter) == [("property", ("wecom", "email"))]
    digest = default_rules().match(Facts(on="quota_missed", at=local("2025-04-15 08:00")))
    assert digest is not None and digest.mode == "digest"
    assert [r.recipient.recipient_id for r in select(digest, BAIRUIJING, {})] == ["secretary"]


def test_a_building_level_escalation_tells_nobody_outside_and_a_recipient_only_covers_its_phases() -> None:
    inside = Facts(
        on="escalated",
        at=local("2025-04-15 09:00"),
        category="environmental_sanitation",
        target=None,
        to_level="compound",
    )
    assert route(inside) == []
    phase4 = recipient("property-4", "property_management", channels=("email",), covers=[{"phase": "4"}])
    rule = default_rules().match(Facts(on="escalated", at=local("2025-04-15 09:00"), target="property_management"))
    assert rule is not None
    assert select(rule, [phase4], {"phase": "4", "building": "4"})[0].recipient.recipient_id == "property-4"
    assert select(rule, [phase4], {"phase": "2"}) == []


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"name": "x", "send_to": [], "colour": "red"}, "unknown keys"),
        ({"name": "x", "send_to": [], "hours": "late"}, "hours must look like"),
        ({"name": "x", "send_to": [{"kind": "fire_brigade"}]}, "send_to entries"),
        ({"name": "x", "send_to": [], "category": ["noise"]}, "unknown values"),
        ({"name": "x", "send_to": [], "channels": ["fax"]}, "unknown values"),
        ({"name": "x"}, "send_to is required"),
    ],
)
def test_a_malformed_rules_file_is_refused_at_load(row: dict, message: str) -> None:
    with pytest.raises(RuleError, match=message):
        parse_rules({"rule": [row]})


def test_quiet_hours_defer_routine_messages_to_their_end_but_let_urgent_ones_through() -> None:
    quiet = QuietHours(start=time(22), end=time(7))
    property_ = recipient("property", "property_management", quiet_hours=quiet)
    at_night = local("2025-04-15 23:10")
    assert send_at(property_, urgent=False, now=at_night) == local("2025-04-16 07:00")
    assert send_at(property_, urgent=True, now=at_night) == at_night
    assert send_at(property_, urgent=False, now=local("2025-04-16 06:59")) == local("2025-04-16 07:00")
    assert send_at(property_, urgent=False, now=local("2025-04-16 12:00")) == local("2025-04-16 12:00")


def test_backoff_grows_with_jitter_up_to_its_ceiling() -> None:
    rng = random.Random(7)
    delays = [backoff_seconds(n, initial=2, maximum=60, rng=rng) for n in range(1, 9)]
    assert 1 <= delays[0] <= 2 and 2 <= delays[1] <= 4 and 4 <= delays[2] <= 8
    assert all(30 <= d <= 60 for d in delays[5:])
    assert len({round(d, 6) for d in delays}) == len(delays)  # jittered, not lock-step


def test_the_digest_waits_for_its_hour_and_for_the_closing_burst_to_settle() -> None:
    at = time(8, 0)
    last = local("2025-04-15 00:05")
    assert not digest_due(local("2025-04-15 07:59"), at, last, 60)
    assert digest_due(local("2025-04-15 08:00"), at, last, 60)
    assert not digest_due(local("2025-04-15 08:00"), at, local("2025-04-15 07:59:30"), 60)


SECRET = "whsec-police-duty-0123456789abcdef"
BODY = b'{"notification_id":"n1","title":"\xe7\x9f\x9b\xe7\x9b\xbe"}'


def test_a_signed_webhook_verifies_and_a_replay_of_it_is_refused() -> None:
    guard = ReplayGuard()
    headers = sign(BODY, [SECRET], delivery_id="n1")
    assert verify_signature(headers, BODY, [SECRET], guard=guard) == "n1"
    with pytest.raises(SignatureError, match="replayed"):
        verify_signature(headers, BODY, [SECRET], guard=guard)


def test_a_tampered_stale_or_wrongly_keyed_webhook_is_refused() -> None:
    headers = sign(BODY, [SECRET], delivery_id="n1")
    with pytest.raises(SignatureError, match="does not match"):
        verify_signature(headers, BODY.replace(b"n1", b"n2"), [SECRET])
    with pytest.raises(SignatureError, match="does not match"):
        verify_signature(headers, BODY, ["whsec-someone-else-000000000000"])
    old = sign(BODY, [SECRET], delivery_id="n1", timestamp=int(clock.time()) - 301)
    with pytest.raises(SignatureError, match="tolerance"):
        verify_signature(old, BODY, [SECRET])
    with pytest.raises(SignatureError, match="missing header"):
        verify_signature({k: v for k, v in headers.items() if k != "Gridwork-Nonce"}, BODY, [SECRET])


def test_during_a_rotation_both_secrets_sign_so_either_receiver_verifies() -> None:
    new = "whsec-rotated-2025-04-aaaaaaaaaaaa"
    headers = sign(BODY, [new, SECRET], delivery_id="n1")
    assert verify_signature(headers, BODY, [new]) == "n1"
    assert verify_signature(headers, BODY, [SECRET]) == "n1"
    assert verify_signature(sign(BODY, [new], delivery_id="n1"), BODY, [new, SECRET]) == "n1"


def test_an_acknowledgement_link_is_refused_when_forged_or_expired() -> None:
    key = b"k" * 32
    token = make_token(key, "bairuijing", "n123", int(clock.time()) + 60)
    assert read_token(key, token).notification_id == "n123"
    with pytest.raises(LinkError, match="signature"):
        read_token(key, token.replace("n123", "n124"))
    with pytest.raises(LinkError, match="signature"):
        read_token(b"x" * 32, token)
    with pytest.raises(LinkError, match="expired"):
        read_token(key, make_token(key, "bairuijing", "n123", int(clock.time()) - 1))
    with pytest.raises(LinkError, match="malformed"):
        read_token(key, "../../etc/passwd")


def test_templates_speak_chinese_and_english() -> None:
    facts = {
        "issue_id": "clutter-4-4",
        "category": "safety_hazards",
        "subcategory": "stairwell_clutter",
        "severity": "medium",
        "place": {"compound": "百瑞景", "phase": "4", "building": "4"},
        "description": "楼道堆物",
        "from_level": "building",
        "to_level": "compound",
        "target": "property_management",
        "reason": "overdue",
    }
    zh = render("escalation", "zh", facts, "http://x/v1/ack/t")
    assert zh.title.startswith("【问题升级】安全隐患") and "百瑞景4期4栋" in zh.title
    assert "超时未办" in zh.text and "[确认收到](http://x/v1/ack/t)" in zh.markdown
    en = render("escalation", "en", facts)
    assert en.title == "[Escalation] safety hazard / stairwell_clutter (medium) at 百瑞景 phase 4 building 4"
    assert "To: property management" in en.text and "acknowledge" not in en.text.lower()
