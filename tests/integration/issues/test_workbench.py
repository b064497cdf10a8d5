"""The console's problem workbench: the queue filtered by agency, grid and overdue, sorted overdue first."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from shared.events import now
from tests.harness import eventually
from tests.integration.issues.conftest import COMMUNITY, Service

ISSUES = f"/v1/communities/{COMMUNITY}/issues"
ORDERS = f"/v1/communities/{COMMUNITY}/hotline/orders"


async def order(service: Service, order_no: str, *, respond_in: timedelta, resolve_in: timedelta) -> str:
    """A 12345 work order whose deadlines lie ``respond_in`` / ``resolve_in`` from now (negative: past)."""
    body = {
        "order_no": order_no,
        "request": f"order {order_no}",
        "category": "environmental_sanitation",
        "place": {"grid": "phase1-west"},
        "response_deadline": (now() + respond_in).isoformat(),
        "resolution_deadline": (now() + resolve_in).isoformat(),
    }
    r = await service.client.post(ORDERS, json=body, headers=service.token("hotline"))
    assert r.status_code == 201, r.text
    return str(r.json()["issue"]["issue_id"])


async def accept(service: Service, issue: str) -> None:
    """Accept a work order at whatever version it has reached (its missed deadlines fire meanwhile)."""

    async def accepted() -> bool:
        version = (await service.issue(issue))["issue"]["version"]
        r = await service.client.post(
            f"{ISSUES}/{issue}/accept", json={"version": version}, headers=service.token("secretary")
        )
        assert r.status_code in (200, 409), r.text
        return r.status_code == 200

    await eventually(accepted, timeout=30, what=f"{issue} accepted")


async def queue(service: Service, headers: dict[str, str] | None = None, **params: Any) -> list[str]:
    r = await service.client.get(ISSUES, params=params, headers=headers or service.token("secretary"))
    assert r.status_code == 200, r.text
    return [i["issue_id"] for i in r.json()["issues"]]


async def test_the_secretary_finds_the_overdue_work_orders_first_and_filters_by_agency_and_grid(
    service: Service,
) -> None:
    hours = timedelta(hours=1)
    # Not answered by its response deadline: overdue.
    unanswered = await order(service, "WB-LATE-RESPONSE", respond_in=-2 * hours, resolve_in=48 * hours)
    # Past its resolution deadline (accepted, but still not resolved): overdue, and the older deadline.
    unresolved = await order(service, "WB-LATE-RESOLUTION", respond_in=-30 * hours, resolve_in=-3 * hours)
    # Answered late but accepted now, resolution still ahead: not overdue.
    answered = await order(service, "WB-ANSWERED", respond_in=-1 * hours, resolve_in=24 * hours)
    # Time left on both: not overdue, its deadline the soonest of the rest.
    fresh = await order(service, "WB-FRESH", respond_in=2 * hours, resolve_in=5 * hours)
    for issue in (unresolved, answered):
        await accept(service, issue)
    # A grid worker's find in another grid, handed to the police by name (default deadline: 48 h).
    noise = await service.report(
        category="conflicts_disputes", subcategory="noise", description="drums at night", place={"grid": "phase2-east"}
    )
    noise_id = noise["issue"]["issue_id"]
    v = (await service.act(noise_id, "accept", noise["version"]))["version"]
    await service.act(noise_id, "assign", v, assignee_kind="police", assignee_id="police-ruijing")
    # Property management took a stairwell by the escalation rule (routed by kind, not assigned).
    clutter = await service.report(
        category="safety_hazards", subcategory="stairwell_clutter", description="bikes", place={"grid": "phase2-east"}
    )
    clutter_id = clutter["issue"]["issue_id"]

    async def folded() -> bool:
        r = await service.client.get(ISSUES, headers=service.token("secretary"))
        by_id = {i["issue_id"]: i for i in r.json()["issues"]}
        return (
            len(by_id) == 6
            and by_id[noise_id]["status"] == "assigned"
            and by_id[clutter_id]["target"] == "property_management"
            and by_id[answered]["status"] == "accepted"
            and by_id[unresolved]["status"] == "accepted"
        )

    await eventually(folded, timeout=30, what="the board has folded every step")

    overdue = await queue(service, overdue="true")
    assert sorted(overdue) == sorted([unanswered, unresolved])
    # Overdue first, the oldest missed deadline first (3 h, 2 h ago); then the soonest deadline: the
    # fresh order's response (2 h), the answered order's resolution (24 h), the noise at its building
    # (48 h), the stairwell at its compound (72 h).
    ranked = await queue(service, sort="overdue")
    assert ranked == [unresolved, unanswered, fresh, answered, noise_id, clutter_id]
    r = await service.client.get(ISSUES, params={"overdue": "true"}, headers=service.token("secretary"))
    body = r.json()
    assert body["total"] == 2 and all(i["overdue_now"] for i in body["issues"])
    newest = await queue(service)
    assert newest[0] == clutter_id and newest[-1] == unanswered  # the default stays newest first

    assert await queue(service, agency="police-ruijing") == [noise_id]
    assert await queue(service, agency="police") == [noise_id]  # the kind of the agency assigned
    assert await queue(service, agency="property_management") == [clutter_id]  # escalated to that kind
    assert sorted(await queue(service, agency=["police", "property_management"])) == sorted([noise_id, clutter_id])
    assert await queue(service, agency="urban_management") == []
    assert sorted(await queue(service, grid="phase2-east")) == sorted([noise_id, clutter_id])
    assert await queue(service, grid="phase2-east", agency="police") == [noise_id]
    assert sorted(await queue(service, grid="phase1-west", overdue="true")) == sorted([unanswered, unresolved])
    assert await queue(service, grid="phase2-east", overdue="true") == []

    # The visibility rule still holds: the police desk sees only its case, whatever it filters by.
    police = service.token("agency", agency="police-ruijing", agency_kind="police")
    assert await queue(service, police) == [noise_id]
    assert await queue(service, police, agency="property_management") == []
    assert await queue(service, police, sort="overdue") == [noise_id]
    # …and a worker of phase2-east sees their grid's issues, none of the overdue orders of phase1-west.
    worker = service.token()
    assert await queue(service, worker, overdue="true") == []
    assert sorted(await queue(service, worker, sort="overdue")) == sorted([noise_id, clutter_id])

    bad = await service.client.get(ISSUES, params={"sort": "oldest"}, headers=service.token("secretary"))
    assert bad.status_code == 422 and "sort" in bad.text
    bad = await service.client.get(ISSUES, params={"agency": "police desk"}, headers=service.token("secretary"))
    assert bad.status_code == 422 and "agency" in bad.text


async def bulk(service: Service, headers: dict[str, str] | None = None, **body: Any) -> Any:
    return await service.client.post(f"{ISSUES}/assign", json=body, headers=headers or service.token("secretary"))


async def test_the_secretary_assigns_a_shortlist_at_once_and_each_issue_answers_for_itself(service: Service) -> None:
    async def accepted(grid: str, description: str) -> str:
        out = await service.report(
            category="public_facilities",
            description=description,
            place={"grid": grid},
            headers=service.token("secretary"),  # reported by the secretary: a worker is involved by grid only
        )
        await service.act(out["issue"]["issue_id"], "accept", out["version"])
        return str(out["issue"]["issue_id"])

    mine = await accepted("phase2-east", "broken bench by building 5")
    also_mine = await accepted("phase2-east", "light out in unit 2")
    elsewhere = await accepted("phase1-west", "railing loose by the pond")
    waiting = (await service.report(category="public_facilities", description="not accepted yet"))["issue"]["issue_id"]

    body = {
        "issue_ids": [mine, also_mine, elsewhere, waiting, "is-nope"],
        "assignee_kind": "worker",
        "assignee_id": "w07",
        "note": "this afternoon's round",
    }
    r = await bulk(service, **body)
    assert r.status_code == 200, r.text
    answer = r.json()
    results = {x["issue_id"]: x for x in answer["results"]}
    assert [x["issue_id"] for x in answer["results"]] == body["issue_ids"]  # in the order asked
    assert (answer["assigned"], answer["refused"]) == (3, 2)
    for issue in (mine, also_mine, elsewhere):
        assert results[issue] == {
            "issue_id": issue,
            "ok": True,
            "status": "assigned",
            "version": 3,
            "duplicate": False,
            "error": None,
        }
    refused = results[waiting]
    assert (refused["ok"], refused["status"], refused["error"]["code"]) == (False, "reported", "illegal_transition")
    assert results["is-nope"]["error"]["code"] == "not_found" and results["is-nope"]["status"] is None
    assert await service.types(mine) == ["IssueReported", "IssueAccepted", "IssueAssigned"]

    # The answer was lost: the console sends the same request again; nothing is assigned twice.
    again = (await bulk(service, **body)).json()
    assert [(x["ok"], x["duplicate"]) for x in again["results"][:3]] == [(True, True)] * 3
    assert await service.types(mine) == ["IssueReported", "IssueAccepted", "IssueAssigned"]

    # A grid worker hands the shortlist to the property company: their grid's cases only, and a case
    # already with an agency is that agency's — each refusal named on its own line.
    v = (await service.issue(also_mine))["issue"]["version"]
    await service.act(also_mine, "assign", v, assignee_kind="police", assignee_id="police-ruijing")
    worker = service.token()  # w07 of phase2-east
    theirs = await accepted("phase1-west", "bins by the west gate")  # neither their grid nor theirs
    body = {"issue_ids": [mine, also_mine, theirs], "assignee_kind": "property_management", "assignee_id": "pm-1"}
    answer = (await bulk(service, worker, **body)).json()
    results = {x["issue_id"]: x for x in answer["results"]}
    assert results[mine]["ok"] and results[mine]["status"] == "assigned"
    assert results[also_mine]["error"]["code"] == "forbidden" and "police" in results[also_mine]["error"]["message"]
    assert results[theirs]["error"]["code"] == "forbidden" and results[theirs]["status"] == "accepted"
    assert await service.types(theirs) == ["IssueReported", "IssueAccepted"]

    # The route itself: a role that does no casework, a body too large or repeating an issue.
    assert (await bulk(service, service.token("street_admin", street="x"), **body)).status_code == 403
    too_many = {**body, "issue_ids": [f"is-{i}" for i in range(101)]}
    assert (await bulk(service, **too_many)).status_code == 422
    twice = await bulk(service, **{**body, "issue_ids": [mine, mine]})
    assert twice.status_code == 422 and twice.json()["error"]["field"] == "issue_ids"
