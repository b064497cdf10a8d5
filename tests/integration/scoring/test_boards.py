"""The 评优表 a secretary prints, the street roll-up, the community figures, and what the API refuses."""

from __future__ import annotations

import csv
import io

from openpyxl import load_workbook

from tests.harness import auth
from tests.integration.scoring.conftest import (
    BAIRUIJING,
    STREET,
    WorkerRegistered,
    WorkerRegisteredData,
    at,
    community,
    erased,
    escalated,
    household,
    issue,
    profile,
    resolved,
    scoring_service,
    shift,
    survey,
    training,
    visit,
    worker,
)

DAY = "2025-11-12"


def _day_of_work(w: str, households: int, *, community: str = "bairuijing", hours: float = 5) -> list:
    events = [shift(w, at(DAY, 8), hours * 60, community=community)]
    events += [visit(w, f"{w}-h{k}", at(DAY, 9, k), community=community) for k in range(households)]
    return events


async def test_the_community_board_ranks_workers_and_prints_as_csv_and_xlsx(scoring) -> None:
    await scoring.append(worker("w01"), worker("w02"), worker("w03"), worker("sec", role="secretary"))
    await scoring.folded(
        await scoring.append(
            *_day_of_work("w01", 5),  # attended, 5 households, 5 h: 1 + 0.5 + 2 = 3.5
            *_day_of_work("w02", 5),  # the same: shares rank 1
            *_day_of_work("w03", 2, hours=2),  # attended, 2 households: 1 + 0.2 = 1.2
        )
    )
    resp = await scoring.client.post(
        "/v1/communities/bairuijing/awards",
        headers=auth(scoring.settings, "secretary", community=BAIRUIJING),
        json={
            "award_id": "wenming-2025-11",
            "worker_id": "w03",
            "points": 3,
            "kind": "publicity",
            "reason": "stairwell clearing team in the district paper",
            "occurred_at": "2025-11-12T18:00:00+08:00",
        },
    )
    assert resp.status_code == 201, resp.text
    again = await scoring.client.post(
        "/v1/communities/bairuijing/awards",
        headers=auth(scoring.settings, "secretary", community=BAIRUIJING),
        json={
            "award_id": "wenming-2025-11",
            "worker_id": "w03",
            "points": 3,
            "kind": "publicity",
            "reason": "stairwell clearing team in the district paper",
            "occurred_at": "2025-11-12T18:00:00+08:00",
        },
    )
    assert again.status_code == 200 and again.json()["duplicate"]  # a retry is stored once
    await scoring.folded()

    board = await scoring.get(f"/v1/communities/bairuijing/board?period={DAY}&as_of={DAY}")
    got = [(w["rank"], w["worker_id"], w["total"], w["award_points"]) for w in board["workers"]]
    assert got == [(1, "w03", 4.2, 3.0), (2, "w01", 3.5, 0.0), (2, "w02", 3.5, 0.0)]  # the secretary has no quota
    assert board["street"] == "zhongnan" and board["name"] == "百瑞景社区"

    month = await scoring.get("/v1/communities/bairuijing/board?period=2025-11&as_of=2025-11-12")
    assert [w["total"] for w in month["workers"]] == [4.2, 3.5, 3.5]

    csv_resp = await scoring.client.get(
        f"/v1/communities/bairuijing/board/export?period={DAY}&as_of={DAY}&format=csv",
        headers=auth(scoring.settings, "secretary", community=BAIRUIJING),
    )
    assert csv_resp.status_code == 200 and csv_resp.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(csv_resp.content.decode("utf-8-sig"))))
    assert rows[0][:3] == ["排名 Rank", "网格员 Worker", "姓名 Name"] and rows[0][-1] == "总分 Total"
    assert [(r[0], r[1], r[-1]) for r in rows[1:]] == [("1", "w03", "4.2"), ("2", "w01", "3.5"), ("2", "w02", "3.5")]

    xlsx = await scoring.client.get(
        f"/v1/communities/bairuijing/board/export?period={DAY}&as_of={DAY}&format=xlsx",
        headers=auth(scoring.settings, "secretary", community=BAIRUIJING),
    )
    sheet = load_workbook(io.BytesIO(xlsx.content)).active
    assert sheet["A1"].value == f"评优积分表 Points evaluation — 百瑞景社区 — {DAY}"
    assert [c.value for c in sheet[3]][:2] == [1, "w03"] and sheet.max_row == 5


async def test_the_street_roll_up_ranks_communities_and_their_workers(settings) -> None:
    async with scoring_service(settings) as svc:
        await svc.append(
            community(),
            community("shuiguohu", name="水果湖社区"),
            community("other", street="elsewhere"),
            worker("w01"),
            worker("w02"),
            worker("w01", community="shuiguohu"),
            worker("w09", community="other"),
        )
        await svc.folded(
            await svc.append(
                *_day_of_work("w01", 5),
                *_day_of_work("w02", 1, hours=1),
                *_day_of_work("w01", 5, community="shuiguohu"),
                *_day_of_work("w09", 5, community="other"),
            )
        )
        street = await svc.get(f"/v1/streets/zhongnan/board?period={DAY}&as_of={DAY}", role="street_admin")
        assert [(c["rank"], c["community"], c["workers"], c["average_total"]) for c in street["communities"]] == [
            (1, "shuiguohu", 1, 3.5),
            (2, "bairuijing", 2, 2.3),  # (3.5 + 1.1) / 2
        ]
        assert [(w["rank"], w["community"], w["worker_id"]) for w in street["workers"]] == [
            (1, "bairuijing", "w01"),
            (1, "shuiguohu", "w01"),
            (3, "bairuijing", "w02"),
        ]
        xlsx = await svc.client.get(
            f"/v1/streets/zhongnan/board/export?period={DAY}&as_of={DAY}",
            headers=auth(svc.settings, "street_admin", street=STREET),
        )
        book = load_workbook(io.BytesIO(xlsx.content))
        assert book.sheetnames == ["社区排名", "网格员排名"] and book["社区排名"]["B3"].value == "shuiguohu"

        # Scope: another street's admin sees neither this street nor its communities.
        other = auth(svc.settings, "street_admin", street="elsewhere")
        assert (await svc.client.get("/v1/streets/zhongnan/board", headers=other)).status_code == 403
        assert (await svc.client.get("/v1/communities/bairuijing/board", headers=other)).status_code == 403
        assert (await svc.client.get("/v1/communities/other/board", headers=other)).status_code == 200


async def test_community_figures_visits_ledger_trainings_rates_and_open_problems(scoring) -> None:
    complete = ["name", "phone", "id_number", "address", "members"]
    await scoring.append(
        worker("w01"),
        household("h1", complete),
        household("h2", ["name", "members"]),
        household("h3", complete),
        *[visit("w01", f"h{k % 3 + 1}", at("2025-03-0" + str(k + 1))) for k in range(6)],
        visit("w01", "h1", at("2024-12-30")),  # last year: not this year's visits
        training("w01", "tr-mediation", at("2025-04-10")),
        training("w02", "tr-mediation", at("2025-04-10")),
        training("w01", "tr-pets", at("2025-05-10")),
        survey("h1", "w01", at("2025-06-01"), visited=True, knows=True, satisfaction=5),
        survey("h2", "w01", at("2025-06-01"), visited=True, knows=False, satisfaction=4),
        survey("h3", "w01", at("2025-06-01"), visited=False, knows=True, satisfaction=2),
        survey("h1", "w01", at("2025-06-02"), visited=True, knows=True, satisfaction=5),
        issue("w01", "conflicts_disputes", at("2025-07-01"), issue_id="noise-p2"),  # the night-time noise
        issue("w01", "safety_hazards", at("2025-07-02"), issue_id="clutter-p4b4"),  # stairwell clutter
        issue("w01", "public_facilities", at("2025-07-03"), issue_id="public-area"),
    )
    await scoring.append(
        profile("h2", ["name", "phone", "members"]),  # 3 of 5 now
        erased("h3"),  # PIPL erasure: its personal fields leave the ledger (members stays)
        escalated("noise-p2", "community", at("2025-07-02")),  # to the police, at community level
        resolved("clutter-p4b4", "w01", at("2025-07-05")),
    )
    await scoring.folded()
    fig = await scoring.get("/v1/communities/bairuijing/figures?year=2025")
    assert fig["visits"] == {"value": 6, "target": 63000, "ratio": round(6 / 63000, 4)}
    assert fig["ledger"]["households"] == 3 and fig["ledger"]["complete_households"] == 1
    assert fig["ledger"]["completion"] == round((5 + 3 + 1) / 15, 4) and not fig["ledger"]["met"]
    assert fig["trainings"] == {"value": 2, "target": 25, "met": False}  # two sessions, however many attended
    assert fig["survey"] == {"surveys": 4, "visit_rate": 0.75, "awareness_rate": 0.75, "satisfaction_rate": 0.75}
    problems = fig["open_problems"]
    assert problems["total"] == 2
    assert problems["cells"] == [
        {"category": "conflicts_disputes", "level": "community", "open": 1},
        {"category": "public_facilities", "level": "building", "open": 1},
    ]
    assert problems["by_category"]["safety_hazards"] == 0 and problems["by_level"]["community"] == 1


async def test_bad_requests_name_the_field_and_scope_is_enforced(scoring) -> None:
    await scoring.folded(await scoring.append(worker("w01"), worker("w02")))
    sec = auth(scoring.settings, "secretary", community=BAIRUIJING)
    bad = await scoring.client.get("/v1/communities/bairuijing/board?period=2025-13", headers=sec)
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "period"
    fmt = await scoring.client.get("/v1/communities/bairuijing/board/export?format=pdf", headers=sec)
    assert fmt.status_code == 422 and fmt.json()["error"]["field"].endswith("format")
    award = await scoring.client.post(
        "/v1/communities/bairuijing/awards",
        headers=sec,
        json={"award_id": "a1", "worker_id": "nobody", "points": 1, "reason": "x"},
    )
    assert award.status_code == 422 and award.json()["error"]["field"] == "worker_id"
    zero = await scoring.client.post(
        "/v1/communities/bairuijing/awards",
        headers=sec,
        json={"award_id": "a2", "worker_id": "w01", "points": 0, "reason": "x"},
    )
    assert zero.status_code == 422 and zero.json()["error"]["field"] == "points"
    nosy = auth(scoring.settings, "grid_worker", community=BAIRUIJING, worker_id="w02")
    peek = await scoring.client.get("/v1/communities/bairuijing/workers/w01/progress", headers=nosy)
    assert peek.status_code == 403
    elsewhere = auth(scoring.settings, "secretary", community="xinhe")
    assert (await scoring.client.get("/v1/communities/bairuijing/board", headers=elsewhere)).status_code == 403
    assert (await scoring.client.get("/v1/communities/bairuijing/board")).status_code == 401
    worker_award = await scoring.client.post(
        "/v1/communities/bairuijing/awards",
        headers=nosy,
        json={"award_id": "a3", "worker_id": "w02", "points": 5, "reason": "self-award"},
    )
    assert worker_award.status_code == 403


async def test_the_service_describes_itself(scoring) -> None:
    asyncapi = await scoring.client.get("/asyncapi")
    assert asyncapi.status_code == 200 and "QuotaPeriodClosed" in asyncapi.text and "VisitLogged" in asyncapi.text
    openapi = (await scoring.client.get("/openapi.json")).json()
    assert "/v1/communities/{community}/board/export" in openapi["paths"]
    ready = (await scoring.client.get("/readyz")).json()
    assert ready["status"] == "ready" and ready["projections"][0]["projection"] == "scoring"
    rulebooks = await scoring.get("/v1/rulebooks", role="ops")
    assert rulebooks["default"] == "5plus1@1" and {b["id"] for b in rulebooks["rulebooks"]} == {"5plus1", "4plus1"}


async def test_exports_are_safe_to_open_whatever_a_name_holds(scoring) -> None:
    """A worker named as a formula, or with a control character (#15 items 2 and 7): the CSV and
    XLSX exports answer, and their cells read as text, not as formulas."""
    hostile = WorkerRegistered.new(
        community=BAIRUIJING,
        aggregate_id="w66",
        actor="ops",
        occurred_at=at("2025-01-02"),
        data=WorkerRegisteredData(worker_id="w66", name='=HYPERLINK("http://x.example","bad\x0bname")', grid_id="g"),
    )
    await scoring.folded(await scoring.append(hostile, *_day_of_work("w66", 5)))
    sec = auth(scoring.settings, "secretary", community=BAIRUIJING)
    base = f"/v1/communities/bairuijing/board/export?period={DAY}&as_of={DAY}"
    csv_resp = await scoring.client.get(f"{base}&format=csv", headers=sec)
    assert csv_resp.status_code == 200
    [row] = [r for r in csv.reader(io.StringIO(csv_resp.content.decode("utf-8-sig"))) if r[1:2] == ["w66"]]
    assert row[2] == '\'=HYPERLINK("http://x.example","bad\ufffdname")'
    xlsx = await scoring.client.get(f"{base}&format=xlsx", headers=sec)
    assert xlsx.status_code == 200, xlsx.text[:200]
    sheet = load_workbook(io.BytesIO(xlsx.content)).active
    [name] = [r[2].value for r in sheet.iter_rows(min_row=3) if r[1].value == "w66"]
    assert name.startswith("'=") and "\x0b" not in name
