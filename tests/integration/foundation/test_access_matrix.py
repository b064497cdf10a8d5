"""The access matrix: every route of the four OpenAPI documents, as every kind of caller, in and
out of scope — checked against the expected policy in ``docs/access-policy.toml``.

The four services run on real NATS and PostgreSQL with two communities in two streets, grids,
workers, households, issues in a worker's grid, one assigned to the police, and a 12345 work
order.  A request counts as *allowed* when it gets past authorization (any answer but 401 and
403 — a stale version's 409 or an unknown id's 404 mean the caller was let in) and as *denied* on
403.  Zero unexpected allows, zero unexpected denies; a route missing from the policy fails too.
"""

from __future__ import annotations

import tomllib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from shared.auth import Principal
from shared.settings import Settings
from tests.harness import auth, eventually, four_services
from tests.unit.test_authorization_path import PUBLIC

POLICY = Path(__file__).resolve().parents[3] / "docs" / "access-policy.toml"
A, B = "acc-a", "acc-b"  # two communities in two streets
S1, S2 = "s1", "s2"


def Caller(name: str, role: str, **scope: str) -> Principal:
    """One principal of the matrix: a role and its scope claims (``sub`` names it in the report)."""
    return Principal.model_validate({"sub": name, "role": role, **scope})


CALLERS = (
    Caller("ops", "ops"),
    Caller("secretary of A", "secretary", community=A),
    Caller("secretary of B", "secretary", community=B),
    Caller("street admin of A's street", "street_admin", street=S1),
    Caller("street admin of B's street", "street_admin", street=S2),
    Caller("worker w1 (A, grid g1)", "grid_worker", community=A, grid="g1", worker_id="w1"),
    Caller("worker w2 (A, grid g2)", "grid_worker", community=A, grid="g2", worker_id="w2"),
    Caller("worker of B", "grid_worker", community=B, grid="gb", worker_id="wb"),
    Caller("police of A", "agency", community=A, agency="police-a", agency_kind="police"),
    Caller("property company of A", "agency", community=A, agency="pm-a", agency_kind="property_management"),
    Caller("police of B", "agency", community=B, agency="police-b", agency_kind="police"),
    Caller("12345 hotline", "hotline"),
    Caller("12345 hotline of B only", "hotline", community=B),
)


@dataclass
class Case:
    """One row of the policy: a route with its path values, body, and who may call it."""

    op: str
    group: str
    allow: dict[str, str]
    params: dict[str, str] = field(default_factory=dict)
    body: Any = None
    upload: str | None = None
    workers: list[str] = field(default_factory=lambda: ["w1"])
    agencies: list[str] = field(default_factory=list)
    worker: str = "w1"

    def expects(self, who: Principal) -> bool:
        """Whether the policy lets ``who`` call this route on this case."""
        rule = self.allow.get(who.role)
        if rule is None:
            return False
        in_community = (
            who.role == "ops"
            or (who.role == "street_admin" and who.street == S1)
            or (who.role == "hotline" and who.community in (None, A))
            or who.community == A
        )
        return {
            "all": True,
            "community": in_community,
            "street": who.role == "ops" or who.street == S1,
            "grid": in_community and who.worker_id in self.workers,
            "self": in_community and who.worker_id == self.worker,
            "routed": in_community and who.agency in self.agencies,
        }[rule]


def load_policy(path: Path = POLICY) -> list[Case]:
    """The expected policy, one :class:`Case` per row."""
    return [Case(**row) for row in tomllib.loads(path.read_text())["route"]]


def test_the_policy_names_only_known_roles_and_rules() -> None:
    roles = {"ops", "secretary", "street_admin", "grid_worker", "agency", "hotline"}
    rules = {"all", "community", "street", "grid", "self", "routed"}
    for case in load_policy():
        assert set(case.allow) <= roles and set(case.allow.values()) <= rules, case.op


# ------------------------------------------------------------------------------ the stack


@dataclass
class Stack:
    clients: dict[str, httpx.AsyncClient]  # by service
    ops: dict[str, str]  # "METHOD path" → service
    fixtures: dict[str, str]


def _operations(app: FastAPI) -> list[str]:
    return [f"{method.upper()} {path}" for path, ops in app.openapi()["paths"].items() for method in ops]


async def _ok(r: httpx.Response) -> Any:
    assert r.status_code in (200, 201, 204), f"{r.request.method} {r.request.url} → {r.status_code} {r.text}"
    return r.json() if r.content else None


async def _seed(settings: Settings, c: dict[str, httpx.AsyncClient]) -> dict[str, str]:
    """Two communities, their directories, issues and a work order — through the APIs."""
    ops = auth(settings, "ops")
    sec = {x: auth(settings, "secretary", community=x) for x in (A, B)}
    w1 = auth(settings, "grid_worker", community=A, grid="g1", worker_id="w1")
    v = c["visits"]
    await _ok(await v.put(f"/v1/communities/{A}", json={"name": "Access A", "street": S1}, headers=ops))
    await _ok(await v.put(f"/v1/communities/{B}", json={"name": "Access B", "street": S2}, headers=ops))
    for community, grids in ((A, ("g1", "g2")), (B, ("gb",))):
        base = f"/v1/communities/{community}"
        for g in grids:
            worker, building = f"w{g[1:]}", f"b{g[1:]}"
            body = {"number": g[1:], "grid_id": g, "units": 2}
            await _ok(await v.put(f"{base}/buildings/{building}", json=body, headers=sec[community]))
            body = {"name": f"Worker {worker}", "grid_id": g, "role": "grid_worker"}
            await _ok(await v.put(f"{base}/workers/{worker}", json=body, headers=sec[community]))
            body = {"name": f"Grid {g}", "worker_id": worker, "buildings": [building]}
            await _ok(await v.put(f"{base}/grids/{g}", json=body, headers=sec[community]))
    for h in ("h1", "h-erased"):
        body = {"household_id": h, "building_id": "b1", "room": "101", "personal": {"name": "Resident One"}}
        await _ok(await v.post(f"/v1/communities/{A}/households", json=body, headers=sec[A]))
    body = {"role": "sinking_party_member", "building_id": "b1", "display_name": "Party member 1"}
    await _ok(await v.put(f"/v1/communities/{A}/persons/pm1", json=body, headers=sec[A]))

    i = c["issues"]
    issues = f"/v1/communities/{A}/issues"
    # A category and severity no escalation rule routes, so that no agency is involved by chance.
    report = {"category": "public_facilities", "description": "a broken bench"}
    worker_issue = (await _ok(await i.post(issues, json=report, headers=w1)))["issue"]["issue_id"]
    report = {"category": "public_facilities", "description": "the same bench", "issue_id": "is-dup"}
    worker_issue_2 = (await _ok(await i.post(issues, json=report, headers=w1)))["issue"]["issue_id"]
    report = {"category": "conflicts_disputes", "description": "noise", "place": {"grid": "g1"}}
    police = await _ok(await i.post(issues, json=report, headers=sec[A]))
    police_issue = police["issue"]["issue_id"]
    v1 = (await _ok(await i.post(f"{issues}/{police_issue}/accept", json={"version": 1}, headers=sec[A])))["version"]
    body = {"version": v1, "assignee_kind": "police", "assignee_id": "police-a"}
    await _ok(await i.post(f"{issues}/{police_issue}/assign", json=body, headers=sec[A]))
    order = {
        "order_no": "HL-1",
        "request": "dogs off the lead",
        "category": "conflicts_disputes",
        "place": {"grid": "g1"},
        "response_deadline": "2030-01-01T10:00:00+08:00",
        "resolution_deadline": "2030-01-03T10:00:00+08:00",
    }
    await _ok(await i.post(f"/v1/communities/{A}/hotline/orders", json=order, headers=auth(settings, "hotline")))

    recipient = {
        "kind": "police",
        "name": "Duty desk",
        "agency": "police-a",
        "channels": {"email": {"address": "d@x.cn"}},
    }
    await _ok(await c["notify"].put(f"/v1/communities/{A}/recipients/r1", json=recipient, headers=sec[A]))

    # Every service has folded both communities' streets (a street admin's scope is looked up there).
    street_a = auth(settings, "street_admin", street=S1)
    probes = {
        "visits": f"/v1/communities/{A}",
        "issues": f"/v1/communities/{A}/problems/open",
        "scoring": f"/v1/communities/{A}/board",
        "notify": f"/v1/communities/{A}/recipients",
    }
    for service, path in probes.items():

        async def folded(service: str = service, path: str = path) -> bool:
            return (await c[service].get(path, headers=street_a)).status_code == 200

        await eventually(folded, what=f"{service} knows community {A}'s street", timeout=30)
    return {
        "$worker_issue": worker_issue,
        "$worker_issue_2": worker_issue_2,
        "$police_issue": police_issue,
        "$hotline_issue": "hl-HL-1",
        "$hotline_order": "HL-1",
    }


@pytest.fixture
async def four(settings: Settings) -> AsyncIterator[Stack]:
    async with four_services(settings) as (apps, clients):
        ops = {op: name for name, app in apps.items() for op in _operations(app)}
        yield Stack(clients, ops, await _seed(settings, clients))


# ------------------------------------------------------------------------------ the matrix


def _path(template: str, case: Case, fixtures: dict[str, str]) -> str:
    values = {"community": A, "street": S1, **case.params}
    for key, value in values.items():
        template = template.replace("{" + key + "}", fixtures.get(value, value))
    assert "{" not in template, f"{case.op}: no value for a path parameter"
    return template


def _body(body: Any, fixtures: dict[str, str]) -> Any:
    if isinstance(body, dict):
        return {k: _body(v, fixtures) for k, v in body.items()}
    if isinstance(body, str):
        return fixtures.get(body, body)
    return body


async def test_every_route_answers_every_caller_as_the_policy_says(settings: Settings, four: Stack) -> None:
    cases = load_policy()
    listed = {case.op for case in cases}
    documented = {op for op in four.ops if op.split(" ", 1)[1] not in PUBLIC}
    assert sorted(documented - listed) == [], "routes the policy does not list"
    assert sorted(listed - set(four.ops)) == [], "policy rows for routes no service has"

    unexpected: list[str] = []
    cells = 0
    for case in cases:
        method, template = case.op.split(" ", 1)
        client = four.clients[four.ops[case.op]]
        path = _path(template, case, four.fixtures)
        for who in CALLERS:
            claims = who.model_dump(exclude_none=True, exclude={"sub", "role"})
            kw: dict[str, Any] = {"headers": auth(settings, who.role, sub=who.sub, **claims)}
            if case.upload:
                kw["files"] = {"file": (case.upload, b"household_id,building_id\n", "text/csv")}
            elif case.body is not None:
                kw["json"] = _body(case.body, four.fixtures)
            r = await client.request(method, path, **kw)
            cells += 1
            assert r.status_code != 401, f"{case.op} as {who.sub}: {r.text}"
            allowed = r.status_code != 403
            if allowed != case.expects(who):
                verdict = "allowed" if allowed else "denied"
                unexpected.append(f"{case.op} [{case.params}] as {who.sub}: {verdict} ({r.status_code} {r.text[:160]})")
    assert unexpected == [], f"{len(unexpected)} of {cells} cells differ from docs/access-policy.toml:\n" + "\n".join(
        unexpected
    )
