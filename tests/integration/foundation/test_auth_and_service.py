"""Tokens and the service skeleton every service shares (health, readiness, metrics, AsyncAPI)."""

from __future__ import annotations

import gc

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from shared.auth import Principal, require
from shared.errors import Conflict
from shared.events.visits import VisitLogged, VisitLoggedData
from shared.service import ServiceSpec, create_app
from shared.settings import Settings
from tests.harness import auth, running

router = APIRouter()


class Note(BaseModel):
    text: str = Field(min_length=1, max_length=20)


@router.post("/v1/communities/{community}/notes")
async def add_note(
    community: str, note: Note, principal: Principal = Depends(require("secretary", "grid_worker"))
) -> dict[str, str]:
    if note.text == "stale":
        raise Conflict("the note changed meanwhile", field="text", current_state="closed")
    return {"community": community, "text": note.text}


@router.get("/v1/whoami")
async def whoami(request: Request, principal: Principal = Depends(require())) -> dict[str, str | None]:
    return {"role": principal.role, "community": principal.community}


def _visit() -> VisitLogged:
    return VisitLogged.new(
        community="bairuijing",
        aggregate_id="v1",
        actor="w01",
        data=VisitLoggedData(visit_id="v1", worker_id="w01", household_id="h1", mode="online", minutes=3),
    )


SPEC = ServiceSpec(
    name="probe",
    title="Probe",
    description="Foundation probe service",
    routers=[router],
    publishes=[VisitLogged],
    consumes=[VisitLogged],
)


async def test_tokens_missing_wrong_role_and_wrong_scope_are_refused(settings: Settings) -> None:
    async with running(create_app(SPEC, settings)) as client:
        url = "/v1/communities/bairuijing/notes"
        missing = await client.post(url, json={"text": "hi"})
        assert missing.status_code == 401 and missing.json()["error"]["code"] == "unauthorized"

        forged = await client.post(url, json={"text": "hi"}, headers={"Authorization": "Bearer abc.def.ghi"})
        assert forged.status_code == 401

        hotline = await client.post(url, json={"text": "hi"}, headers=auth(settings, "hotline"))
        assert hotline.status_code == 403 and "role hotline" in hotline.json()["error"]["message"]

        other = await client.post(
            url, json={"text": "hi"}, headers=auth(settings, "secretary", community="another-community")
        )
        assert other.status_code == 403 and other.json()["error"]["field"] == "community"
        # The scope is checked before the body is read: an out-of-scope caller learns nothing of the body's rules.
        other_bad = await client.post(
            url, json={"text": ""}, headers=auth(settings, "secretary", community="another-community")
        )
        assert other_bad.status_code == 403
        street_admin = await client.post(url, json={"text": "hi"}, headers=auth(settings, "street_admin", street="s1"))
        assert street_admin.status_code == 403  # this service has no community → street lookup: refused

        ok = await client.post(url, json={"text": "hi"}, headers=auth(settings, "secretary", community="bairuijing"))
        assert ok.status_code == 200 and ok.json() == {"community": "bairuijing", "text": "hi"}


async def test_bad_input_names_the_field_and_conflicts_say_why(settings: Settings) -> None:
    headers = auth(settings, "secretary", community="bairuijing")
    async with running(create_app(SPEC, settings)) as client:
        bad = await client.post("/v1/communities/bairuijing/notes", json={"text": ""}, headers=headers)
        assert bad.status_code == 422
        assert bad.json()["error"]["field"] == "text"
        # A JSON syntax error names the body (and where), not a character offset as the field.
        broken = await client.post(
            "/v1/communities/bairuijing/notes",
            content=b'{"text": "hi",}',
            headers={**headers, "Content-Type": "application/json"},
        )
        assert broken.status_code == 422 and broken.json()["error"]["field"] == "body"
        assert "not valid JSON at character" in broken.json()["error"]["message"]
        # A form or plain text where JSON is expected: the body as a whole is at fault.
        form = await client.post("/v1/communities/bairuijing/notes", data={"text": "hi"}, headers=headers)
        assert form.status_code == 422 and form.json()["error"]["field"] == "body"
        # Authentication comes before the body's errors: no token 401, out of scope 403 — never 422.
        for who, status in ((None, 401), (auth(settings, "secretary", community="elsewhere"), 403)):
            r = await client.post(
                "/v1/communities/bairuijing/notes",
                content=b"{not json",
                headers={"Content-Type": "application/json", **(who or {})},
            )
            assert r.status_code == status, (status, r.text)
        conflict = await client.post("/v1/communities/bairuijing/notes", json={"text": "stale"}, headers=headers)
        assert conflict.status_code == 409
        assert conflict.json()["error"] == {
            "code": "conflict",
            "message": "the note changed meanwhile",
            "field": "text",
            "current_state": "closed",
        }


async def test_health_readiness_metrics_and_asyncapi(settings: Settings) -> None:
    async with running(create_app(SPEC, settings)) as client:
        assert (await client.get("/healthz")).json()["status"] == "ok"
        ready = await client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["nats"] and ready.json()["postgres"]
        await client._transport.app.state.runtime.store.append([_visit()], 0)  # type: ignore[attr-defined]
        metrics = await client.get("/metrics")
        assert 'gridwork_events_appended_total{type="VisitLogged"}' in metrics.text
        doc = (await client.get("/asyncapi")).json()
        assert doc["asyncapi"].startswith("3.")
        assert any("VisitLogged" in name for name in doc["components"]["schemas"])
        openapi = (await client.get("/openapi.json")).json()
        assert "/v1/communities/{community}/notes" in openapi["paths"]


async def test_a_service_process_freezes_what_start_up_built(settings: Settings) -> None:
    # `python -m services.<name>` (serve) keeps its start-up objects out of the cyclic GC's full
    # collections; an app embedded elsewhere (tests, the bench's in-process mode) leaves the GC alone.
    thresholds, frozen = gc.get_threshold(), gc.get_freeze_count()
    try:
        async with running(create_app(SPEC, settings)):
            assert gc.get_freeze_count() == frozen
        async with running(create_app(SPEC, settings, quiet_gc=True)) as client:
            assert gc.get_freeze_count() > frozen + 10_000
            assert gc.get_threshold()[0] == 10_000
            assert (await client.get("/healthz")).status_code == 200
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
