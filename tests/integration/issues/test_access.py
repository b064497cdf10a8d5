"""Who sees and works which issue (#13 items 2–6): an agency its own cases, a worker their grid's,
the hotline its orders' call-back, the reporter from the token, and ops no casework."""

from __future__ import annotations

from typing import Any

from tests.harness import eventually
from tests.integration.issues.conftest import COMMUNITY, Service

ISSUES = f"/v1/communities/{COMMUNITY}/issues"
ORDERS = f"/v1/communities/{COMMUNITY}/hotline/orders"


async def listed(service: Service, headers: dict[str, str]) -> set[str]:
    r = await service.client.get(ISSUES, headers=headers)
    assert r.status_code == 200, r.text
    return {i["issue_id"] for i in r.json()["issues"]}


async def board_settled(service: Service, *issues: str) -> None:
    """The board (a projection) has folded every step of ``issues``."""

    async def folded() -> bool:
        board = await listed_views(service)
        for issue in issues:
            if board.get(issue) != (await service.issue(issue))["issue"]["version"]:
                return False
        return True

    await eventually(folded, what="the board caught up")


async def listed_views(service: Service) -> dict[str, int]:
    r = await service.client.get(ISSUES, headers=service.token("secretary"))
    return {i["issue_id"]: i["version"] for i in r.json()["issues"]}


async def test_an_agency_lists_reads_and_resolves_only_the_cases_routed_or_assigned_to_it(service: Service) -> None:
    police = service.token("agency", agency="zhongnanlu-police", agency_kind="police")
    property_company = service.token("agency", agency="ruijing-property", agency_kind="property_management")
    sec = service.token("secretary")
    # An ordinary case, a case assigned to the police by name, a case escalated to property management.
    bench = (await service.report(category="public_facilities", description="a broken bench"))["issue"]["issue_id"]
    fight = (await service.report(category="conflicts_disputes", description="a quarrel", headers=sec))["issue"]
    v = (await service.act(fight["issue_id"], "accept", fight["version"]))["version"]
    body = {"assignee_kind": "police", "assignee_id": "zhongnanlu-police"}
    await service.act(fight["issue_id"], "assign", v, **body)
    lift = (await service.report(category="public_facilities", description="the lift stops between floors"))["issue"]
    to_pm = {"reason": "the lift is the property company's", "target": "property_management"}
    await service.act(lift["issue_id"], "escalate", lift["version"], **to_pm)
    await board_settled(service, bench, fight["issue_id"], lift["issue_id"])

    assert await listed(service, police) == {fight["issue_id"]}
    assert await listed(service, property_company) == {lift["issue_id"]}
    assert await listed(service, sec) >= {bench, fight["issue_id"], lift["issue_id"]}

    r = await service.client.get(f"{ISSUES}/{bench}", headers=police)
    assert r.status_code == 403 and r.json()["error"]["field"] == "issue_id"
    version = (await service.issue(bench))["issue"]["version"]
    await service.act(bench, "resolve", version, expect=403, headers=police, resolution="not ours")
    version = (await service.issue(fight["issue_id"]))["issue"]["version"]
    await service.act(fight["issue_id"], "resolve", version, expect=403, headers=property_company, resolution="x")
    done = await service.act(fight["issue_id"], "resolve", version, headers=police, resolution="mediated")
    assert done["issue"]["status"] == "resolved"


async def test_a_worker_works_their_grids_issues_and_leaves_an_agencys_case_to_the_agency(service: Service) -> None:
    mine = service.token("grid_worker", worker_id="w07", grid="phase2-east")
    other = service.token("grid_worker", worker_id="w12", grid="phase4-north")
    found = (await service.report(category="public_facilities", description="a loose railing", headers=mine))["issue"]
    assert found["place"]["grid"] == "phase2-east" and found["reported_by"] == "w07"
    issue = found["issue_id"]
    await board_settled(service, issue)

    assert issue in await listed(service, mine) and issue not in await listed(service, other)
    for action, body in (
        ("accept", {}),
        ("assign", {"assignee_kind": "worker", "assignee_id": "w12"}),
        ("escalate", {"reason": "mine now"}),
        ("resolve", {"resolution": "fixed it"}),
        ("close", {}),
    ):
        r = await service.client.post(f"{ISSUES}/{issue}/{action}", json={"version": 1, **body}, headers=other)
        assert r.status_code == 403, (action, r.text)
    assert (await service.issue(issue))["issue"]["status"] == "reported"  # nothing changed

    v = (await service.act(issue, "accept", found["version"], headers=mine))["version"]
    # Assigned to w12 by name: now w12 may see and work it too.
    v = (await service.act(issue, "assign", v, headers=mine, assignee_kind="worker", assignee_id="w12"))["version"]
    await board_settled(service, issue)
    assert issue in await listed(service, other)
    v = (await service.act(issue, "assign", v, headers=other, assignee_kind="police", assignee_id="zhongnanlu-police"))[
        "version"
    ]
    refused = await service.act(issue, "resolve", v, expect=403, headers=mine, resolution="done")
    assert "police zhongnanlu-police" in refused["error"]["message"]
    # Nor can the worker take it back from the police by reassigning it, or close it by a merge.
    await service.act(issue, "assign", v, expect=403, headers=other, assignee_kind="worker", assignee_id="w12")
    other_issue = (await service.report(category="public_facilities", description="another", headers=other))["issue"]
    await service.act(issue, "merge", v, expect=403, headers=other, duplicate_of=other_issue["issue_id"])


async def test_ids_of_the_hotline_and_open311_cannot_be_chosen_by_a_client(service: Service) -> None:
    """A worker's report claiming hl-<order> would swallow that 12345 order (#15 item 9)."""
    for claimed in ("hl-GD20261208001", "o311-abc", "w07-own-id"):
        r = await service.client.post(
            ISSUES,
            json={"issue_id": claimed, "category": "public_facilities", "description": "x"},
            headers=service.token(),
        )
        assert r.status_code == 422 and r.json()["error"]["field"] == "issue_id", r.text


async def test_the_public_open311_feed_shows_no_casework_text(service: Service) -> None:
    form = {"api_key": "app-key-1", "service_code": "conflicts_disputes.pets", "address_string": "phase 3"}
    posted = await service.client.post("/open311/v2/requests.json", data=form)
    rid = posted.json()[0]["service_request_id"]
    state = await service.issue(rid)
    v = (await service.act(rid, "accept", state["issue"]["version"]))["version"]
    v = (await service.act(rid, "assign", v, assignee_kind="worker", assignee_id="w07", note="call 王秀英"))["version"]
    await service.act(rid, "resolve", v, resolution="called 王秀英 on 13907110000 and fixed it")

    async def resolved() -> dict[str, Any] | None:
        r = await service.client.get(f"/open311/v2/requests/{rid}.json")
        return r.json()[0] if r.status_code == 200 and r.json()[0]["status_notes"].startswith("Resolved") else None

    public = await eventually(resolved, what="the resolution on the feed")
    assert "王秀英" not in str(public) and "13907110000" not in str(public) and "w07" not in str(public)


async def test_a_12345_order_is_verified_and_closed_only_by_the_hotlines_call_back(service: Service) -> None:
    hotline = service.token("hotline")
    order: dict[str, Any] = {
        "order_no": "GD-ACCESS-1",
        "request": "the street lamp at gate 2 is out",
        "category": "public_facilities",
        "response_deadline": "2030-01-01T10:00:00+08:00",
        "resolution_deadline": "2030-01-03T10:00:00+08:00",
    }
    r = await service.client.post(ORDERS, json=order, headers=hotline)
    assert r.status_code == 201, r.text
    issue = r.json()["issue_id"]
    v = (await service.act(issue, "accept", r.json()["issue"]["version"]))["version"]
    v = (await service.act(issue, "assign", v, assignee_kind="worker", assignee_id="w07"))["version"]
    v = (await service.act(issue, "resolve", v, resolution="lamp replaced"))["version"]
    worker = service.token("grid_worker", grid=None, worker_id="w07")
    for headers in (service.token("secretary"), worker):
        refused = await service.act(
            issue, "verify", v, expect=403, headers=headers, verified_by="resident_callback", satisfied=True
        )
        assert "call-back" in refused["error"]["message"]
    await service.act(issue, "close", v, expect=403)
    r = await service.client.post(f"{ORDERS}/GD-ACCESS-1/callback", json={"satisfied": True}, headers=hotline)
    assert r.status_code == 200 and r.json()["issue"]["status"] == "closed", r.text


async def test_the_reporter_is_the_caller_and_ops_does_no_casework(service: Service) -> None:
    r = await service.client.post(
        ISSUES,
        json={"category": "public_facilities", "description": "x", "reported_by": "w99"},
        headers=service.token(),
    )
    assert r.status_code == 422 and r.json()["error"]["field"] == "reported_by"
    ops = service.token("ops")
    report = {"category": "public_facilities", "description": "ops should not file this"}
    assert (await service.client.post(ISSUES, json=report, headers=ops)).status_code == 403
    order = {
        "order_no": "GD-OPS",
        "request": "x",
        "category": "public_facilities",
        "response_deadline": "2030-01-01T10:00:00+08:00",
        "resolution_deadline": "2030-01-03T10:00:00+08:00",
    }
    assert (await service.client.post(ORDERS, json=order, headers=ops)).status_code == 403
    assert (await service.client.get(ISSUES, headers=ops)).status_code == 403
    counts = await service.client.get(f"/v1/communities/{COMMUNITY}/problems/open", headers=ops)
    assert counts.status_code == 200  # counts, no casework
