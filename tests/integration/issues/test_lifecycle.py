"""An issue's life over HTTP on real NATS and PostgreSQL: transitions, versions, retries, queries."""

from __future__ import annotations

from datetime import timedelta

from shared.events import now
from tests.harness import eventually
from tests.integration.issues.conftest import COMMUNITY, Service

PHASE2_B5 = {"compound": "bairuijing", "phase": "2", "building": "5"}


async def test_a_problem_lives_through_every_step_and_each_wrong_step_is_refused_with_its_state(
    service: Service,
) -> None:
    out = await service.report(
        category="livelihood_services",
        subcategory="elderly_care",
        place=PHASE2_B5,
        description="Grandma Li (elderly, living alone) needs her water heater fixed",
        photos=["https://img.example.cn/heater.jpg"],
    )
    issue, v = out["issue"]["issue_id"], out["version"]
    assert (out["issue"]["status"], v, out["issue"]["photos"]) == ("reported", 1, ["https://img.example.cn/heater.jpg"])

    async def refused(action: str, version: int, state: str, **body: object) -> None:
        err = (await service.act(issue, action, version, expect=409, **body))["error"]
        assert (err["code"], err["current_state"], err["version"]) == ("illegal_transition", state, version)

    await refused("resolve", v, "reported", resolution="done")
    await refused("close", v, "reported")
    stale = (await service.act(issue, "accept", 0, expect=409))["error"]
    assert (stale["code"], stale["current_state"], stale["version"]) == ("stale_version", "reported", 1)

    v = (await service.act(issue, "accept", v))["version"]
    retry = await service.act(issue, "accept", v - 1)  # the first answer was lost; the phone re-sends
    assert retry["duplicate"] and retry["version"] == v
    await refused("accept", v, "accepted")
    v = (await service.act(issue, "assign", v, assignee_kind="worker", assignee_id="w07"))["version"]
    v = (
        await service.act(
            issue,
            "assign",
            v,
            assignee_kind="volunteer_team",
            assignee_id="phase2-volunteers",
            note="the plumber among the volunteers",
        )
    )["version"]
    await refused("verify", v, "assigned", satisfied=True)
    done = await service.act(issue, "resolve", v, resolution="heater replaced by a volunteer plumber")
    v = done["version"]
    assert done["issue"]["status"] == "resolved" and done["events"] == ["IssueResolved"]
    await refused("escalate", v, "resolved", reason="x")
    back = await service.act(
        issue,
        "verify",
        v,
        verified_by="resident_callback",
        satisfied=False,
        satisfaction=2,
        note="the new heater leaks",
    )
    assert back["events"] == ["IssueVerified", "IssueReopened"] and back["issue"]["status"] == "reopened"
    v = back["version"]
    await refused("close", v, "reopened")
    v = (await service.act(issue, "assign", v, assignee_kind="property_management", assignee_id="pm-ruijing"))[
        "version"
    ]
    v = (await service.act(issue, "resolve", v, resolution="leak fixed"))["version"]
    ok = await service.act(issue, "verify", v, verified_by="worker", satisfied=True, satisfaction=5)
    v = ok["version"]
    assert ok["issue"]["status"] == "verified" and ok["issue"]["satisfaction"] == 5
    closed = await service.act(issue, "close", v)
    assert closed["issue"]["status"] == "closed" and not closed["issue"]["is_open"]
    await refused("assign", closed["version"], "closed", assignee_kind="worker", assignee_id="w07")
    again = await service.act(issue, "reopen", closed["version"], reason="the heater broke again")
    assert again["issue"]["status"] == "reopened"

    view = await service.issue(issue)
    assert [h["type"] for h in view["history"]] == [
        "IssueReported",
        "IssueAccepted",
        "IssueAssigned",
        "IssueAssigned",
        "IssueResolved",
        "IssueVerified",
        "IssueReopened",
        "IssueAssigned",
        "IssueResolved",
        "IssueVerified",
        "IssueClosed",
        "IssueReopened",
    ]
    assert view["issue"]["version"] == 12 and len(view["issue"]["assignees"]) == 3


async def test_a_report_is_stored_once_however_often_it_is_sent_and_bad_input_names_the_field(
    service: Service,
) -> None:
    body = {
        "issue_id": "is-w07-20250414-1",
        "category": "environmental_sanitation",
        "subcategory": "garbage",
        "place": PHASE2_B5,
        "description": "bins overflowing behind building 5",
    }
    first = await service.report(**body)
    again = await service.report(expect=200, **body)
    assert again["duplicate"] and again["issue"]["issue_id"] == first["issue"]["issue_id"]
    assert await service.types("is-w07-20250414-1") == ["IssueReported"]
    clash = await service.report(expect=409, **{**body, "description": "something else"})
    assert (clash["error"]["code"], clash["error"]["current_state"]) == ("illegal_transition", "reported")
    keyed = {"category": "environmental_sanitation", "description": "dog mess on the path"}
    h = {**service.token(), "Idempotency-Key": "phone-42:17"}
    a, b = await service.report(headers=h, **keyed), await service.report(headers=h, expect=200, **keyed)
    assert a["issue"]["issue_id"] == b["issue"]["issue_id"] and b["duplicate"]

    bad_sub = await service.report(expect=422, category="safety_hazards", subcategory="noise", description="x")
    assert bad_sub["error"]["field"] == "subcategory"
    bad_cat = await service.report(expect=422, category="weather", description="x")
    assert bad_cat["error"]["field"] == "category"
    bad_photo = await service.report(expect=422, category="safety_hazards", description="x", photos=["not a url"])
    assert bad_photo["error"]["field"].startswith("photos")
    # found when? the visits API's window: not ahead of the server (beyond clock drift), not > 30 days back
    for when, reason in ((now() + timedelta(days=2), "future"), (now() - timedelta(days=40), "too_old")):
        late = {"issue_id": f"is-w07-late-{reason}", "category": "safety_hazards", "description": "x"}
        answer = await service.report(expect=422, occurred_at=when.isoformat(), **late)
        assert (answer["error"]["field"], answer["error"]["reason"]) == ("occurred_at", reason), answer
        assert await service.types(late["issue_id"]) == []  # nothing stored
    yesterday = await service.report(
        issue_id="is-w07-yesterday",
        category="safety_hazards",
        description="x",
        occurred_at=(now() - timedelta(days=1)).isoformat(),
    )
    assert yesterday["issue"]["issue_id"] == "is-w07-yesterday"
    missing = await service.act("nope", "accept", 1, expect=404)
    assert missing["error"]["code"] == "not_found"
    bad_version = await service.act("nope", "accept", -1, expect=422)
    assert bad_version["error"]["field"] == "version"


async def test_a_duplicate_nearby_is_suggested_and_merged(service: Service) -> None:
    first = await service.report(
        category="conflicts_disputes",
        subcategory="pets",
        place=PHASE2_B5,
        description="a big dog off the lead scares children",
    )
    first_id = first["issue"]["issue_id"]

    async def on_board() -> bool:
        r = await service.client.get(f"/v1/communities/{COMMUNITY}/issues", headers=service.token())
        return any(i["issue_id"] == first_id for i in r.json()["issues"])

    await eventually(on_board, timeout=30, what="first report on the board")
    second = await service.report(
        category="conflicts_disputes",
        subcategory="pets",
        place=PHASE2_B5,
        description="dog barking and off the lead near building 5",
    )
    second_id = second["issue"]["issue_id"]
    assert [d["issue_id"] for d in second["possible_duplicates"]] == [first_id]
    elsewhere = await service.report(
        category="conflicts_disputes",
        subcategory="pets",
        place={**PHASE2_B5, "building": "9"},
        description="dog in building 9",
    )
    assert elsewhere["possible_duplicates"] == []
    other_category = await service.report(category="safety_hazards", place=PHASE2_B5, description="loose tile")

    wrong = await service.act(second_id, "merge", 1, expect=422, duplicate_of=other_category["issue"]["issue_id"])
    assert wrong["error"]["field"] == "duplicate_of"
    itself = await service.act(second_id, "merge", 1, expect=422, duplicate_of=second_id)
    assert itself["error"]["field"] == "duplicate_of"
    await service.act(second_id, "merge", 1, expect=404, duplicate_of="no-such-issue")
    merged = await service.act(second_id, "merge", 1, duplicate_of=first_id)
    assert (merged["issue"]["status"], merged["issue"]["duplicate_of"]) == ("merged", first_id)

    async def no_open_duplicates() -> bool:
        r = await service.client.get(
            f"/v1/communities/{COMMUNITY}/issues/{first_id}/duplicates", headers=service.token()
        )
        return r.status_code == 200 and r.json()["possible_duplicates"] == []  # merged ones are not open

    await eventually(no_open_duplicates, timeout=30, what="merged issue no longer suggested")


async def test_the_board_lists_filters_and_counts_open_problems_by_category_and_level(service: Service) -> None:
    a = await service.report(category="public_facilities", subcategory="lighting", description="corridor dark")
    b = await service.report(
        category="public_facilities", subcategory="lift", description="lift stuck", severity="high"
    )
    c = await service.report(category="livelihood_services", description="job training request")
    await service.act(
        b["issue"]["issue_id"], "escalate", 1, reason="the lift company does not answer", to_level="community"
    )
    v = (await service.act(c["issue"]["issue_id"], "accept", 1))["version"]
    v = (await service.act(c["issue"]["issue_id"], "assign", v, assignee_kind="worker", assignee_id="w07"))["version"]
    await service.act(c["issue"]["issue_id"], "resolve", v, resolution="signed up for the street's course")
    url = f"/v1/communities/{COMMUNITY}/issues"
    h = service.token("secretary")

    async def settled() -> dict:
        r = await service.client.get(f"/v1/communities/{COMMUNITY}/problems/open", headers=h)
        body = r.json()
        return body if body["total"] == 2 and body["by_category"]["public_facilities"].get("community") else {}

    counts = await eventually(settled, timeout=30, what="open problems counted")
    assert counts["by_category"] == {"public_facilities": {"building": 1, "community": 1}}
    listed = (await service.client.get(url, params={"category": "public_facilities"}, headers=h)).json()
    assert listed["total"] == 2
    at_community = (await service.client.get(url, params={"level": "community"}, headers=h)).json()
    assert [i["issue_id"] for i in at_community["issues"]] == [b["issue"]["issue_id"]]
    resolved = (await service.client.get(url, params={"state": "resolved"}, headers=h)).json()
    assert [i["issue_id"] for i in resolved["issues"]] == [c["issue"]["issue_id"]]
    open_only = (await service.client.get(url, params={"open": "true"}, headers=h)).json()
    assert {i["issue_id"] for i in open_only["issues"]} == {a["issue"]["issue_id"], b["issue"]["issue_id"]}
    assert all(i["next_deadline"] for i in open_only["issues"])  # a deadline clock runs on each

    other = service.token("grid_worker", community="another")
    assert (await service.client.get(url, headers=other)).status_code == 403
    assert (await service.client.get(url)).status_code == 401
    hotline = service.token("hotline")
    assert (await service.client.get(url, headers=hotline)).status_code == 403
    cats = (await service.client.get("/v1/categories", headers=h)).json()["categories"]
    assert len(cats) == 5
    # Each with its response templates, which the console prefills its forms with.
    templates = {c["code"]: c["templates"] for c in cats}
    assert set(templates["conflicts_disputes"]) == {"resolution", "feedback"}
    assert templates["conflicts_disputes"]["feedback"]["zh"].startswith("您反映的纠纷")
    assert templates["conflicts_disputes"]["resolution"]["en"].startswith("The grid worker mediated")
    ready = (await service.client.get("/readyz")).json()
    assert {p["projection"] for p in ready["projections"]} == {
        "issues_board",
        "hotline_feedback",
        "issue_filing",
        "issue_escalation",
        "issue_statistics",
    }
    channels = str((await service.client.get("/asyncapi")).json())
    assert "IssueEscalated" in channels and "NotificationUnacknowledged" in channels
