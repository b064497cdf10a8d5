"""Whatever the API accepts, every projection folds (#15 item 6): a date outside the years gridwork
holds (2000–2100) and a control character in any text are refused at the edge, naming the field —
once accepted they were events the read models could not hold, or exports no reader could open."""

from __future__ import annotations

from typing import Any

from services.issues.app import build_app as issues_app
from services.scoring.app import build_app as scoring_app
from services.visits.app import build_app as visits_app
from shared.settings import Settings
from tests.harness import auth, running

C = "/v1/communities/bairuijing"


def order(order_no: str, **extra: Any) -> dict[str, Any]:
    return {
        "order_no": order_no,
        "request": "dogs off the lead in phase 2",
        "category": "conflicts_disputes",
        "response_deadline": "2030-04-14T12:00:00+08:00",
        "resolution_deadline": "2030-04-16T12:00:00+08:00",
        **extra,
    }


async def test_a_control_character_in_any_text_is_refused_naming_the_body(settings: Settings) -> None:
    sec = auth(settings, "secretary", community="bairuijing")
    w07 = auth(settings, "grid_worker", community="bairuijing", grid="g1", worker_id="w07")
    hotline = auth(settings, "hotline", community="bairuijing")
    json_headers = {"Content-Type": "application/json"}
    async with running(visits_app(settings)) as visits, running(issues_app(settings)) as issues:
        refused = [
            # a vertical tab in a worker's name broke the XLSX exports; an ESC, a BEL, a form feed…
            (visits, "PUT", f"{C}/workers/w09", {"name": "bad\x0bname"}, sec),
            (issues, "POST", f"{C}/issues", {"category": "safety_hazards", "description": "a\x01b"}, w07),
            (issues, "POST", f"{C}/hotline/orders", order("GD1", request="x\x1by"), hotline),
        ]
        for client, method, path, body, who in refused:
            r = await client.request(method, path, json=body, headers=who)
            assert r.status_code == 422, (path, r.status_code, r.text)
            error = r.json()["error"]
            assert error["field"] == "body" and "control character" in error["message"], error
        # JSON's short escapes for a backspace and a form feed are control characters too.
        for raw in (rb'{"name": "a\bb"}', rb'{"name": "a\fb"}', rb'{"name": "a\u001Fb"}'):
            r = await visits.put(f"{C}/workers/w09", content=raw, headers={**sec, **json_headers})
            assert r.status_code == 422 and "control character" in r.json()["error"]["message"], raw
        # Open311 takes forms, and answers in its own format.
        form = {"api_key": "k", "service_code": "x", "description": "a\x0cb"}
        r = await issues.post("/open311/v2/requests.json", data=form)
        assert r.status_code == 422 and r.json()[0]["code"] == 422, r.text
        # Text keeps its tabs and line breaks; an escaped backslash before "b" or "u000b" is text.
        ok = [
            (visits, "PUT", f"{C}/workers/w09", {"name": "tab\tname"}, sec),
            (visits, "PUT", f"{C}/workers/w10", {"name": "back\\bslash \\u000b"}, sec),
            (issues, "POST", f"{C}/issues", {"category": "safety_hazards", "description": "line\r\nbreak"}, w07),
        ]
        for client, method, path, body, who in ok:
            r = await client.request(method, path, json=body, headers=who)
            assert r.status_code in (200, 201), (path, r.status_code, r.text)


async def test_a_date_outside_2000_to_2100_is_refused_naming_its_field(settings: Settings) -> None:
    hotline = auth(settings, "hotline", community="bairuijing")
    w07 = auth(settings, "grid_worker", community="bairuijing", grid="g1", worker_id="w07")
    sec = auth(settings, "secretary", community="bairuijing")
    async with (
        running(visits_app(settings)) as visits,
        running(issues_app(settings)) as issues,
        running(scoring_app(settings)) as scoring,
    ):
        cases = [
            (issues, f"{C}/hotline/orders", order("GD2", response_deadline="0001-01-01T00:00:00+08:00"), hotline),
            (issues, f"{C}/hotline/orders", order("GD3", resolution_deadline="9999-12-31T23:59:59-10:00"), hotline),
            (issues, f"{C}/hotline/orders", order("GD4", dispatched_at="1999-12-31T12:00:00+08:00"), hotline),
            (
                visits,
                f"{C}/volunteer-services",
                {"household_id": "h1", "activity": "dog patrol", "hours": 2, "service_date": "0001-01-01"},
                w07,
            ),
            (
                scoring,
                f"{C}/awards",
                {"award_id": "a1", "worker_id": "w07", "points": 2, "reason": "x", "occurred_at": "9999-01-01T00:00"},
                sec,
            ),
        ]
        for client, path, body, who in cases:
            r = await client.post(path, json=body, headers=who)
            assert r.status_code == 422, (path, r.status_code, r.text)
            error = r.json()["error"]
            bad = next(k for k, v in body.items() if isinstance(v, str) and v[:4] in ("0001", "9999", "1999"))
            assert error["field"] == bad and "2000" in error["message"], error
        # 2030 deadlines and an order dispatched years ago are fine.
        r = await issues.post(
            f"{C}/hotline/orders", json=order("GD5", dispatched_at="2001-02-03T04:05:06+08:00"), headers=hotline
        )
        assert r.status_code == 201, r.text
