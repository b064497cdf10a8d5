"""Redaction before the public Open311 feed: the secretary withholds a resident's name and face, the feed
shows the redacted text without the photo, the staff API keeps the original and the redaction."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from xml.etree import ElementTree as ET

import pytest

from services.issues.app import build_app
from shared.eventstore import aggregate_filter
from shared.settings import Settings
from shared.vault import is_ref
from tests.harness import eventually, running
from tests.integration.issues.conftest import COMMUNITY, Service, make_settings

FEED = "/open311/v2"
FACE = "https://img.example.cn/wang-and-dog.jpg"
LEAD = "https://img.example.cn/dog-off-lead.jpg"


@pytest.fixture
async def public(settings: Settings) -> AsyncIterator[Service]:
    """The issues service whose Open311 feed also shows residents' complaints."""
    s = make_settings(settings, open311_public_sources=["open311", "resident"])
    app = build_app(s)
    async with running(app) as client:
        yield Service(client, app, s)


async def redact(service: Service, issue: str, headers: dict[str, str] | None = None, **body: Any) -> Any:
    return await service.client.post(
        f"/v1/communities/{COMMUNITY}/issues/{issue}/redact",
        json=body,
        headers=headers or service.token("secretary"),
    )


async def feed(service: Service, issue: str) -> dict[str, Any]:
    r = await service.client.get(f"{FEED}/requests/{issue}.json")
    assert r.status_code == 200, r.text
    [one] = r.json()
    assert isinstance(one, dict)
    return one


async def test_the_secretary_redacts_a_residents_name_and_face_before_the_public_feed(public: Service) -> None:
    service = public
    told = "Mrs Wang of room 301 lets her dog off the lead every morning"
    out = await service.report(
        source="resident",
        category="conflicts_disputes",
        subcategory="pets",
        description=told,
        photos=[FACE, LEAD],
        place={"compound": "bairuijing", "phase": "3", "building": "3"},
    )
    issue, version = out["issue"]["issue_id"], out["version"]

    # Unredacted, the feed shows the report as it was made (the behaviour so far): text and first photo.
    async def listed() -> dict[str, Any] | None:
        r = await service.client.get(f"{FEED}/requests/{issue}.json")
        return r.json()[0] if r.status_code == 200 else None

    before = await eventually(listed, timeout=30, what="the complaint on the public feed")
    assert (before["description"], before["media_url"]) == (told, FACE)

    # Only the secretary redacts.
    body = {"description": "A dog is let off the lead in building 3", "hide_photos": [FACE], "reason": "names her"}
    assert (await redact(service, issue, service.token(), **body)).status_code == 403  # a grid worker
    police = service.token("agency", agency="police-ruijing", agency_kind="police")
    assert (await redact(service, issue, police, **body)).status_code == 403

    r = await redact(service, issue, **body)
    assert r.status_code == 200, r.text
    done = r.json()
    assert done["events"] == ["IssueRedacted"] and done["version"] == version  # the casework's version stands
    assert done["issue"]["description"] == told  # the staff view keeps the original…
    redaction = done["issue"]["redaction"]  # …and the redaction beside it
    assert (redaction["description"], redaction["hidden_photos"], redaction["reason"], redaction["by"]) == (
        body["description"],
        [FACE],
        "names her",
        "secretary",
    )
    assert (done["open311"]["description"], done["open311"]["media_url"]) == (body["description"], LEAD)
    again = (await redact(service, issue, **body)).json()  # the answer was lost: the console sends it again
    assert again["events"] == [] and again["duplicate"] is True
    assert (await service.types(issue)).count("IssueRedacted") == 1

    # The public feed, single and listed, JSON and XML: the redacted text, the face withheld.
    async def redacted() -> dict[str, Any] | None:
        shown = await feed(service, issue)
        return shown if shown["description"] == body["description"] else None

    shown = await eventually(redacted, timeout=30, what="the feed shows the redaction")
    assert shown["media_url"] == LEAD and shown["updated_datetime"] >= before["updated_datetime"]
    listing = (await service.client.get(f"{FEED}/requests.json")).json()
    assert [(x["description"], x["media_url"]) for x in listing if x["service_request_id"] == issue] == [
        (body["description"], LEAD)
    ]
    xml = ET.fromstring((await service.client.get(f"{FEED}/requests/{issue}.xml")).content)
    assert xml.find("request/description").text == body["description"]
    assert "Wang" not in (await service.client.get(f"{FEED}/requests.xml")).text

    # The staff API: the original, the redaction, and the redaction in the history (who, when, why).
    staff = await service.issue(issue)
    assert staff["issue"]["description"] == told and staff["issue"]["photos"] == [FACE, LEAD]
    last = staff["history"][-1]
    assert (last["type"], last["actor"], last["data"]["reason"], last["data"]["hidden_photos"]) == (
        "IssueRedacted",
        "secretary",
        "names her",
        [FACE],
    )
    assert last["occurred_at"] and last["data"]["description"] == body["description"]
    # The replacement text and the reason are sealed in the vault like every free text.
    [stored] = [
        s.event()
        for s in await service.store.read(aggregate_filter(service.store.ns, COMMUNITY, "issues", "issue", issue))
        if s.event().type == "IssueRedacted"
    ]
    assert is_ref(stored.data.description) and is_ref(stored.data.reason)

    # A pending write made on the version before the redaction is not stale.
    accepted = await service.act(issue, "accept", version)
    assert accepted["issue"]["status"] == "accepted"

    # A later redaction hides more and keeps the text redacted; every photo withheld.
    more = (await redact(service, issue, hide_photos=True, reason="the other photo shows her door")).json()
    assert more["issue"]["redaction"]["hidden_photos"] == [FACE, LEAD]
    assert (more["open311"]["description"], more["open311"]["media_url"]) == (body["description"], None)

    # Bad redactions name the field.
    bad = await redact(service, issue, hide_photos=["https://img.example.cn/unknown.jpg"], reason="x")
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "hide_photos"
    bad = await redact(service, issue, reason="nothing to hide")
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "description"
    bad = await redact(service, issue, description="x")
    assert bad.status_code == 422 and "reason" in bad.text
    missing = await redact(service, "is-nope", description="x", reason="y")
    assert missing.status_code == 404
