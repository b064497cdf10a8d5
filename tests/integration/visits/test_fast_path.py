"""The ingest fast path (POST …/visits, …/sync past FastAPI's routing) answers exactly as the FastAPI routes."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from starlette.requests import Request

from services.visits.api import fast
from services.visits.app import build_app, spec_for
from services.visits.settings import visits_settings
from shared.http_adapter import RouteCachingInstrumentatorMiddleware
from shared.service import create_app
from tests.harness import running

from .conftest import C, Field, ago


def _same(answer: httpx.Response, tag: str) -> tuple[int, Any]:
    """Status and body with this side's own record ids taken out."""
    return answer.status_code, json.loads(answer.text.replace(tag, "*"))


async def test_each_visit_and_batch_gets_the_answer_the_route_gives(
    bairuijing: Field, monkeypatch: pytest.MonkeyPatch
) -> None:
    f = bairuijing
    handled: list[str] = []
    for route, (model, roles, handle) in list(fast._ROUTES.items()):

        async def counted(*args: Any, _handle: Any = handle, _route: str = route) -> Any:
            handled.append(_route)
            return await _handle(*args)

        monkeypatch.setitem(fast._ROUTES, route, (model, roles, counted))

    # The same service without the fast path: every request goes through FastAPI's route.
    settings = visits_settings(f.settings.model_copy(update={"visits_role": "api"}))
    assert settings is not None
    assert fast.IngestFastPath in spec_for(settings).ingress
    routed_app = create_app(dataclasses.replace(spec_for(settings), ingress=[]), settings)
    w07, sec = f.w07, f.secretary
    expired = f.token("grid_worker", community=C, grid="g-p4-east", worker_id="w-07", ttl_seconds=-10)
    visits: list[tuple[dict[str, Any], dict[str, str], str]] = [
        ({"visit_id": "{t}v-1", "household_id": "h-p4-b4-2-301", "mode": "priority", "minutes": 20}, w07, ""),
        ({"visit_id": "{t}v-1", "household_id": "h-p4-b4-2-301", "mode": "priority", "minutes": 20}, w07, ""),  # again
        ({"visit_id": "{t}v-1", "household_id": "h-p4-b4-1-101", "mode": "online", "minutes": 5}, w07, ""),  # id taken
        ({"household_id": "h-nobody", "mode": "regular", "minutes": 5}, w07, ""),  # 404
        ({"household_id": "h-p2-b3-1-602", "mode": "regular", "minutes": 5}, w07, ""),  # 403 other grid
        ({"household_id": "h-p4-b4-1-101", "mode": "regular", "minutes": 5, "occurred_at": ago(days=31)}, w07, ""),
        ({"household_id": "h-p4-b4-1-101", "mode": "regular", "minutes": -1}, w07, ""),  # 422 from pydantic
        ({"household_id": "h-p4-b4-1-101", "mode": "regular", "minutes": 5, "extra": 1}, w07, ""),
        ({"household_id": "h-p4-b4-1-101", "mode": "regular", "minutes": 5}, sec, ""),  # no worker named
        ({"household_id": "h-p4-b4-1-101", "mode": "regular", "minutes": 5, "worker_id": "w-02"}, w07, ""),
        ({"household_id": "h-p4-b4-1-101", "mode": "regular", "minutes": 5}, {}, ""),  # 401
        ({"household_id": "h-p4-b4-1-101", "mode": "regular", "minutes": 5}, expired, ""),  # 401
        ({"household_id": "h-p4-b4-1-101", "mode": "regular", "minutes": 5}, f.token("hotline", community=C), ""),
        ({"household_id": "h-p4-b4-1-101", "mode": "regular", "minutes": 5}, f.token("secretary", community="x"), ""),
        ({"household_id": "h-p4-b4-1-101", "mode": "regular", "minutes": 5}, {**w07, "Idempotency-Key": "{t}k"}, ""),
        ({"household_id": "h-p4-b4-1-101", "mode": "regular", "minutes": 5}, {**w07, "Idempotency-Key": "{t}k"}, ""),
        ({"household_id": "h-p4-b4-1-101", "mode": "regular", "minutes": 5}, {**w07, "Idempotency-Key": "a b"}, ""),
        ({}, w07, "not json"),
        ({}, {**w07, "Content-Type": "text/plain"}, '{"household_id": "h-p4-b4-1-101"}'),
    ]
    knock = {"household_id": "h-p4-b4-2-301", "mode": "regular", "minutes": 5}
    batch = [
        {"client_id": "{t}s-1", "kind": "visit", "occurred_at": ago(hours=2), "data": knock},
        {"client_id": "{t}s-2", "kind": "visit", "occurred_at": ago(hours=1), "data": {**knock, "household_id": "h-x"}},
        {"client_id": "{t}s-3", "kind": "visit", "data": knock},  # no occurred_at
        {"client_id": "{t}s-4", "kind": "talent_discovered", "occurred_at": ago(hours=1), "data": {"field": "music"}},
        {"client_id": "{t}s-1", "kind": "visit", "occurred_at": ago(hours=2), "data": knock},  # twice in a batch
    ]
    syncs: list[tuple[Any, dict[str, str]]] = [
        ({"records": batch}, w07),
        ({"records": batch}, w07),  # re-sent: duplicates
        ({"records": batch}, sec),  # a secretary does not sync
        ({"records": batch, "device": "x"}, w07),  # 422: unknown field
        ({"records": batch}, f.token("grid_worker", community=C, grid="g-p4-east")),  # no worker_id
    ]

    async def answers(client: httpx.AsyncClient, tag: str) -> list[tuple[int, Any]]:
        out = []
        for body, headers, raw in visits:
            hdrs = {k: v.replace("{t}", tag) for k, v in headers.items()}
            content = raw or json.dumps(body).replace("{t}", tag)
            if "Content-Type" not in hdrs:
                hdrs["Content-Type"] = "application/json"
            out.append(_same(await client.post(f.url("/visits"), content=content, headers=hdrs), tag))
        for body, headers in syncs:
            content = json.dumps(body).replace("{t}", tag)
            hdrs = {**headers, "Content-Type": "application/json"}
            out.append(_same(await client.post(f.url("/sync"), content=content, headers=hdrs), tag))
        r = await client.post("/v1/communities/bad!id/visits", json=visits[0][0], headers=w07)
        out.append(_same(r, tag))
        return out

    def counted() -> Counter[tuple[str, str]]:
        out: Counter[tuple[str, str]] = Counter()
        for route in ("visits", "sync"):
            for status in ("2xx", "4xx", "5xx"):
                labels = {"handler": f"/v1/communities/{{community}}/{route}", "method": "POST", "status": status}
                out[route, status] = int(REGISTRY.get_sample_value("http_requests_total", labels) or 0)
        return out

    before = counted()
    fast_answers = await answers(f.client, "fast-")
    # The HTTP metrics count every answer once under the route's template: those of the fast path
    # (which runs in front of the instrumentation and counts its own) and those of the route.
    by_route = [("visits", status) for status, _ in fast_answers[: len(visits)]]
    by_route += [("sync", status) for status, _ in fast_answers[len(visits) : len(visits) + len(syncs)]]
    by_route.append(("visits", fast_answers[-1][0]))  # bad!id: the route's template, its 422
    expected = Counter((route, f"{status // 100}xx") for route, status in by_route)
    assert counted() - before == expected, (counted() - before, expected)
    routed_handled = len(handled)
    async with running(routed_app) as routed:
        routed_answers = await answers(routed, "route-")
    assert len(handled) == routed_handled  # the app without the fast path never used it
    for i, (a, b) in enumerate(zip(fast_answers, routed_answers, strict=True)):
        a_body, b_body = a[1], b[1]
        if isinstance(a_body, dict):  # each stored its own event
            for body in (a_body, b_body):
                body.pop("event_id", None)
                if "id" in body and len(body["id"]) == 36:  # a fresh UUIDv7 when no id was given
                    body["id"] = "uuid"
        assert a == b, f"request {i}: fast path {a} vs route {b}"
    statuses = [status for status, _ in fast_answers]
    assert statuses[:3] == [201, 200, 409] and 401 in statuses and 422 in statuses and 404 in statuses
    # Well-formed requests in the caller's scope were answered by the fast path, the rest by the
    # route (the secretary of another community gets the route's 403 from shared.auth.require).
    assert handled.count("visits") == 11 and handled.count("sync") == 3, handled

    # What the fast path hands on is labelled by the instrumentation with the route's template.
    app = build_app(f.settings)
    metrics = RouteCachingInstrumentatorMiddleware(app)
    for path, template in (
        ("/visits", "/v1/communities/{community}/visits"),
        ("/sync", "/v1/communities/{community}/sync"),
    ):
        scope = {"type": "http", "method": "POST", "path": f.url(path), "root_path": "", "app": app, "headers": []}
        assert metrics._get_handler(Request(scope)) == (template, True)
        assert metrics._get_handler(Request(scope)) == (template, True)  # the second time from memory
