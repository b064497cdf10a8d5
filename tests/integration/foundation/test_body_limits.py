"""A request body over its limit is refused with 413 before anything reads it (#15 item 1): by its
Content-Length at once, while it streams when it has none, on every route — the visits fast path
and Open311 included — and before the token is checked."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx

from services.issues.app import build_app as issues_app
from services.visits.app import build_app as visits_app
from shared.settings import Settings
from tests.harness import auth, running

LIMIT = 64 * 1024


def limited(settings: Settings) -> Settings:
    return settings.model_copy(update={"max_body_bytes": LIMIT, "ledger_import_max_bytes": 4 * LIMIT})


async def streamed(size: int, chunk: int = 16 * 1024) -> AsyncIterator[bytes]:
    """A body without a Content-Length (chunked), ``size`` bytes of a JSON string."""
    yield b'{"description": "'
    sent = 0
    while sent < size:
        yield b"x" * chunk
        sent += chunk
    yield b'"}'


async def test_a_body_over_the_limit_is_refused_before_the_token_or_the_route(settings: Settings) -> None:
    s = limited(settings)
    async with running(issues_app(s)) as issues, running(visits_app(s)) as visits:
        big = b'{"description": "' + b"x" * (2 * LIMIT) + b'"}'
        json_headers = {"Content-Type": "application/json"}
        for client, path in (
            (issues, "/v1/communities/bairuijing/issues"),
            (visits, "/v1/communities/bairuijing/visits"),  # the fast path's route
            (visits, "/v1/communities/bairuijing/sync"),
        ):
            # No token, a token: either way 413 — the body is never parsed.
            for headers in (json_headers, {**json_headers, **auth(s, "grid_worker", community="bairuijing")}):
                r = await client.post(path, content=big, headers=headers)
                assert r.status_code == 413, (path, r.status_code, r.text[:200])
                assert r.json()["error"] == {
                    "code": "too_large",
                    "message": f"the request body is larger than {LIMIT} bytes",
                    "field": "body",
                }
            r = await client.post(path, content=streamed(2 * LIMIT), headers=json_headers)
            assert r.status_code == 413, (path, "chunked", r.status_code)
        # Open311 answers in its own error format.
        r = await issues.post("/open311/v2/requests.json", content=big, headers=json_headers)
        assert r.status_code == 413 and r.json() == [
            {"code": 413, "description": f"the request body is larger than {LIMIT} bytes"}
        ]
        # A body within the limit goes on to the route: without a token, 401.
        r = await issues.post(
            "/v1/communities/bairuijing/issues", content=b'{"description": "x"}', headers=json_headers
        )
        assert r.status_code == 401


async def test_the_ledger_import_has_its_own_larger_limit(settings: Settings) -> None:
    s = limited(settings)
    sec = auth(s, "secretary", community="bairuijing")
    async with running(visits_app(s)) as visits:
        path = "/v1/communities/bairuijing/ledger/import"
        header = b"household_id,building\n"
        within = header + b"".join(b"h-%06d,b1\n" % i for i in range(2 * LIMIT // 10))
        assert LIMIT < len(within) < 4 * LIMIT
        r = await visits.post(path, files={"file": ("ledger.csv", within, "text/csv")}, headers=sec)
        assert r.status_code != 413, r.text[:200]
        over = header + b"x" * (5 * LIMIT)
        r = await visits.post(path, files={"file": ("ledger.csv", over, "text/csv")}, headers=sec)
        assert r.status_code == 413


async def test_a_content_length_that_is_not_a_number_is_refused(settings: Settings) -> None:
    s = limited(settings)
    async with running(issues_app(s)) as issues:
        transport = issues._transport  # send the raw header as a client might
        request = httpx.Request(
            "POST",
            "http://testserver/v1/communities/bairuijing/issues",
            headers={"content-length": "-1", "content-type": "application/json"},
            content=b"{}",
        )
        request.headers["content-length"] = "-1"
        r = await transport.handle_async_request(request)
        assert r.status_code == 413


async def test_the_vaults_reference_brackets_are_refused_in_any_body(settings: Settings) -> None:
    """A reference typed into a field (a worker's place, an Open311 attribute) would be revealed as
    the text it stands for: no request may carry the brackets, however it spells them."""
    s = limited(settings)
    w07 = {**auth(s, "grid_worker", community="bairuijing", grid="g1", worker_id="w07")}
    async with running(issues_app(s)) as issues:
        ref = "⟦abcdefghijklmnopqrstuvwxyz⟧"
        for body in (
            {"category": "safety_hazards", "description": "x", "place": {"building": ref}},
            {"category": "safety_hazards", "description": ref},
        ):
            r = await issues.post("/v1/communities/bairuijing/issues", json=body, headers=w07)  # JSON-escaped
            assert r.status_code == 422 and r.json()["error"]["field"] == "body", r.text
            raw = '{"category": "safety_hazards", "description": "' + ref + '"}'
            r = await issues.post(
                "/v1/communities/bairuijing/issues",
                content=raw.encode(),
                headers={**w07, "Content-Type": "application/json"},
            )
            assert r.status_code == 422
        form = {"api_key": "k", "service_code": "x", "attribute[compound]": ref}
        r = await issues.post("/open311/v2/requests.json", data=form)  # form-encoded
        assert r.status_code == 422 and r.json()[0]["code"] == 422


async def test_a_nul_or_a_control_character_is_refused_wherever_it_comes(settings: Settings) -> None:
    """#15 items 6 and 8: a NUL reached SQL (500) or an event no projection could fold."""
    s = limited(settings)
    w07 = auth(s, "grid_worker", community="bairuijing", grid="g1", worker_id="w07")
    async with running(issues_app(s)) as issues:
        r = await issues.post(
            "/v1/communities/bairuijing/issues",
            json={"category": "safety_hazards", "description": "a\x00b"},
            headers=w07,
        )
        assert r.status_code == 422 and r.json()["error"]["field"] == "body" and "NUL" in r.json()["error"]["message"]
        r = await issues.get("/v1/communities/bairuijing/issues?source=%00", headers=w07)
        assert r.status_code == 422 and r.json()["error"]["field"] == "query"
        r = await issues.get("/v1/communities/bair%00uijing/issues", headers=w07)
        assert r.status_code == 422 and r.json()["error"]["field"] == "path"
        r = await issues.get("/open311/v2/requests/%00.json")
        assert r.status_code == 422 and r.json()[0]["code"] == 422
        ok = await issues.get("/v1/communities/bairuijing/issues?source=grid_worker%0Aand", headers=w07)
        assert ok.status_code == 200  # a line feed is text, not a control to refuse
