"""Open311 GeoReport v2: every endpoint in JSON and XML, with the specification's names and errors."""

from __future__ import annotations

from datetime import timedelta
from xml.etree import ElementTree as ET

from services.issues.app import build_app
from services.issues.settings import IssuesSettings
from shared.cells import xml_text
from shared.events import now
from tests.harness import eventually, running
from tests.integration.issues.conftest import COMMUNITY, Service

BASE = "/open311/v2"
REQUEST_FIELDS = {
    "service_request_id",
    "status",
    "status_notes",
    "service_name",
    "service_code",
    "description",
    "agency_responsible",
    "service_notice",
    "requested_datetime",
    "updated_datetime",
    "expected_datetime",
    "address",
    "address_id",
    "zipcode",
    "lat",
    "long",
    "media_url",
}


def xml(body: bytes) -> ET.Element:
    return ET.fromstring(body)


async def test_discovery_and_services_in_both_formats(service: Service) -> None:
    c = service.client
    disc = (await c.get(f"{BASE}/discovery.json")).json()
    assert disc["endpoints"][0]["specification"] == "http://wiki.open311.org/GeoReport_v2"
    assert set(disc["endpoints"][0]["formats"]) == {"application/json", "text/xml"}
    d = xml((await c.get(f"{BASE}/discovery.xml")).content)
    assert d.tag == "discovery" and d.find("endpoints/endpoint/url").text.endswith("/open311/v2/")
    assert [f.text for f in d.findall("endpoints/endpoint/formats/format")] == ["application/json", "text/xml"]

    services = (await c.get(f"{BASE}/services.json")).json()
    codes = {s["service_code"] for s in services}
    assert {"conflicts_disputes.noise", "safety_hazards.stairwell_clutter", "conflicts_disputes.pets"} <= codes
    assert set(services[0]) == {"service_code", "service_name", "description", "metadata", "type", "keywords", "group"}
    sx = xml((await c.get(f"{BASE}/services.xml")).content)
    assert sx.tag == "services" and len(sx.findall("service")) == len(services)
    assert sx.find("service/metadata").text == "true"

    definition = (await c.get(f"{BASE}/services/conflicts_disputes.noise.json")).json()
    assert definition["service_code"] == "conflicts_disputes.noise"
    severity = definition["attributes"][0]
    assert (severity["code"], severity["datatype"], severity["variable"]) == ("severity", "singlevaluelist", True)
    assert [v["key"] for v in severity["values"]] == ["low", "medium", "high", "critical"]
    dx = xml((await c.get(f"{BASE}/services/conflicts_disputes.noise.xml")).content)
    assert dx.tag == "service_definition"
    assert [v.text for v in dx.findall("attributes/attribute/values/value/key")] == [
        "low",
        "medium",
        "high",
        "critical",
    ]

    missing = await c.get(f"{BASE}/services/weather.rain.json")
    assert missing.status_code == 404 and missing.json() == [
        {"code": 404, "description": "service_code weather.rain not found"}
    ]
    missing_xml = xml((await c.get(f"{BASE}/services/weather.rain.xml")).content)
    assert missing_xml.tag == "errors" and missing_xml.find("error/code").text == "404"
    bad_format = await c.get(f"{BASE}/services.yaml")
    assert bad_format.status_code == 400 and bad_format.json()[0]["code"] == 400


async def test_a_311_app_reports_and_follows_a_request_in_both_formats(service: Service) -> None:
    c = service.client
    form = {
        "api_key": "app-key-1",
        "service_code": "conflicts_disputes.pets",
        "lat": "30.5215",
        "long": "114.3361",
        "address_string": "Bairuijing phase 3, building 3",
        "description": "dogs off the lead at 7 am",
        "media_url": "https://img.example.cn/dog.jpg",
        "attribute[building]": "3",
        "attribute[phase]": "3",
        "email": "resident@example.cn",
        "device_id": "iphone-7f3a",
    }
    posted = await c.post(f"{BASE}/requests.json", data=form)
    assert posted.status_code == 201, posted.text
    [created] = posted.json()
    rid = created["service_request_id"]
    assert created["token"] == rid and rid.startswith("o311-")
    resent = await c.post(f"{BASE}/requests.json", data=form)  # the app retries after a timeout
    assert resent.json()[0]["service_request_id"] == rid
    assert await service.types(rid) == ["IssueReported"]
    reported = (await service.events(rid))[0].data
    assert (reported.source, reported.place.building, reported.place.lat, reported.address) == (
        "open311",
        "3",
        30.5215,
        "Bairuijing phase 3, building 3",
    )
    assert "resident@example.cn" not in reported.model_dump_json()  # contact details are not kept
    px = xml(
        (
            await c.post(
                f"{BASE}/requests.xml", data={**form, "description": "barking at night", "attribute[severity]": "low"}
            )
        ).content
    )
    assert px.tag == "service_requests" and px.find("request/service_request_id").text.startswith("o311-")
    other_id = px.find("request/service_request_id").text

    async def listed() -> list:
        found = (await c.get(f"{BASE}/requests.json", params={"service_request_id": f"{rid},{other_id}"})).json()
        return found if len(found) == 2 else []

    found = await eventually(listed, timeout=30, what="requests on the board")
    assert set(found[0]) == REQUEST_FIELDS
    one = (await c.get(f"{BASE}/requests/{rid}.json")).json()
    assert len(one) == 1 and one[0]["status"] == "open" and one[0]["service_code"] == "conflicts_disputes.pets"
    assert (one[0]["lat"], one[0]["long"], one[0]["media_url"]) == (30.5215, 114.3361, "https://img.example.cn/dog.jpg")
    assert one[0]["expected_datetime"] and one[0]["requested_datetime"]
    assert one[0]["status_notes"].startswith("Reported")
    rx = xml((await c.get(f"{BASE}/requests/{rid}.xml")).content)
    assert rx.tag == "service_requests" and rx.find("request/status").text == "open"
    assert {child.tag for child in rx.find("request")} == REQUEST_FIELDS

    token = (await c.get(f"{BASE}/tokens/{rid}.json")).json()
    assert token == [{"service_request_id": rid, "token": rid}]
    tx = xml((await c.get(f"{BASE}/tokens/{rid}.xml")).content)
    assert tx.find("request/service_request_id").text == rid and tx.find("request/token").text == rid
    assert (await c.get(f"{BASE}/tokens/nope.json")).status_code == 404
    assert xml((await c.get(f"{BASE}/requests/nope.xml")).content).find("error/code").text == "404"

    # The community handles the first one; Open311 shows it closed, with our states in the notes.
    v = (await service.act(rid, "accept", 1))["version"]
    v = (await service.act(rid, "assign", v, assignee_kind="volunteer_team", assignee_id="dog-walkers"))["version"]
    v = (await service.act(rid, "resolve", v, resolution="staggered dog-walking times"))["version"]
    v = (await service.act(rid, "verify", v, satisfied=True, satisfaction=5))["version"]
    await service.act(rid, "close", v)

    async def closed() -> list:
        got = (await c.get(f"{BASE}/requests.json", params={"status": "closed"})).json()
        ids = [r["service_request_id"] for r in got]
        return got if ids == [rid] and got[0]["status_notes"].startswith("Closed") else []

    [done] = await eventually(closed, timeout=30, what="request closed")
    assert done["status_notes"] == "Closed (结案)." and done["expected_datetime"] is None
    open_ = (await c.get(f"{BASE}/requests.json", params={"status": "open"})).json()
    assert [r["service_request_id"] for r in open_] == [other_id]
    by_code = (await c.get(f"{BASE}/requests.xml", params={"service_code": "conflicts_disputes.pets"})).content
    assert len(xml(by_code).findall("request")) == 2
    assert (await c.get(f"{BASE}/requests.json", params={"service_code": "conflicts_disputes.noise"})).json() == []
    later = (now() + timedelta(hours=1)).isoformat()
    assert (await c.get(f"{BASE}/requests.json", params={"start_date": later})).json() == []
    earlier = (now() - timedelta(hours=1)).isoformat()
    window = (await c.get(f"{BASE}/requests.json", params={"start_date": earlier, "end_date": later})).json()
    assert len(window) == 2
    assert (await c.get(f"{BASE}/requests.json", params={"end_date": earlier})).json() == []
    bad = await c.get(f"{BASE}/requests.json", params={"start_date": "yesterday"})
    assert bad.status_code == 400 and "start_date" in bad.json()[0]["description"]
    assert (await c.get(f"{BASE}/requests.json", params={"status": "pending"})).status_code == 400

    # Complaints that came in another way (a grid worker, the hotline) are not public through Open311.
    private = await service.report(category="conflicts_disputes", subcategory="pets", description="Mrs Wang, room 301")
    private_id = private["issue"]["issue_id"]
    await eventually(lambda: _on_board(service, private_id), timeout=30, what="private complaint on the board")
    assert (await c.get(f"{BASE}/requests/{private_id}.json")).status_code == 404
    assert private_id not in {r["service_request_id"] for r in (await c.get(f"{BASE}/requests.json")).json()}


async def _on_board(service: Service, issue_id: str) -> bool:
    r = await service.client.get(f"/v1/communities/bairuijing/issues/{issue_id}", headers=service.token())
    listed = await service.client.get("/v1/communities/bairuijing/issues", headers=service.token())
    return r.status_code == 200 and any(i["issue_id"] == issue_id for i in listed.json()["issues"])


async def test_bad_posts_get_the_specification_error_format(service: Service) -> None:
    c = service.client
    ok = {"api_key": "app-key-1", "service_code": "safety_hazards.fire_safety", "address_string": "phase 1 gate"}
    cases = [
        ({**ok, "api_key": ""}, 403, "api_key is required"),
        ({**ok, "api_key": "stolen"}, 403, "api_key is not valid"),
        ({**ok, "jurisdiction_id": "another"}, 403, "jurisdiction_id"),
        ({k: v for k, v in ok.items() if k != "service_code"}, 400, "service_code is required"),
        ({**ok, "service_code": "safety_hazards.ghosts"}, 400, "not a known service"),
        ({k: v for k, v in ok.items() if k != "address_string"}, 400, "a location is required"),
        ({**ok, "lat": "91", "long": "114"}, 400, "lat must be between"),
        ({**ok, "lat": "30.5"}, 400, "together"),
        ({**ok, "attribute[severity]": "apocalyptic"}, 400, "attribute[severity]"),
        ({**ok, "media_url": "ftp://x"}, 400, "media_url"),
    ]
    for form, status, text in cases:
        r = await c.post(f"{BASE}/requests.json", data=form)
        assert r.status_code == status, (form, r.text)
        [err] = r.json()
        assert err["code"] == status and text in err["description"], err
        x = xml((await c.post(f"{BASE}/requests.xml", data=form)).content)
        assert x.tag == "errors" and x.find("error/code").text == str(status)
    assert (await c.post(f"{BASE}/services.json", data=ok)).status_code == 404


async def test_a_control_character_in_a_report_is_refused_in_open311s_format(service: Service) -> None:
    """#15 items 6 and 7: one control character made requests.xml unparseable for every client; it
    is now refused at the edge (what was stored before is still written as U+FFFD: shared.cells)."""
    c = service.client
    form = {
        "api_key": "app-key-1",
        "service_code": "conflicts_disputes.pets",
        "address_string": "phase 3\x0b building 3",
        "description": "dogs off the lead\x01 at 7 am",
    }
    posted = await c.post(f"{BASE}/requests.json", data=form)
    assert posted.status_code == 422, posted.text
    [error] = posted.json()
    assert error["code"] == 422 and "control character" in error["description"]
    assert xml_text("dogs off the lead\x01 at 7 am") == "dogs off the lead\ufffd at 7 am"


async def test_a_public_report_cannot_page_the_police_flood_the_community_or_be_cut(
    issues_settings: IssuesSettings,
) -> None:
    """#15 item 4: rate limits per app and per device, no severity that fires a rule by itself, a
    description too long refused rather than cut — each in Open311's error format."""
    settings = issues_settings.model_copy(
        update={"open311_reports_per_minute": 3, "open311_device_reports_per_hour": 2}
    )
    async with running(build_app(settings)) as c:
        form = {"api_key": "app-key-1", "service_code": "conflicts_disputes.noise", "address_string": "gate 2"}
        loud = await c.post(f"{BASE}/requests.json", data={**form, "attribute[severity]": "critical"})
        assert loud.status_code == 400 and "low or medium" in loud.json()[0]["description"]
        long = await c.post(f"{BASE}/requests.json", data={**form, "description": "x" * 4001})
        assert long.status_code == 400 and "longer than 4000" in long.json()[0]["description"]
        one_phone = {**form, "device_id": "phone-1"}
        statuses = [
            (await c.post(f"{BASE}/requests.json", data={**one_phone, "description": f"n{i}"})).status_code
            for i in range(3)
        ]
        assert statuses == [201, 201, 429]  # the device's hour is spent
        # the app's minute: two stored (the refused ones do not count), one more, then 429
        other = await c.post(f"{BASE}/requests.json", data={**form, "device_id": "phone-2", "description": "n"})
        limited = await c.post(f"{BASE}/requests.json", data={**form, "device_id": "phone-3", "description": "m"})
        assert other.status_code == 201 and limited.status_code == 429
        assert int(limited.headers["Retry-After"]) >= 1 and limited.json()[0]["code"] == 429


async def test_a_new_request_is_readable_by_its_id_the_moment_it_is_acknowledged(service: Service) -> None:
    """#15 item 15: a client that GETs the id its POST returned got 404 until the read model caught up."""
    c = service.client
    for i in range(4):
        form = {
            "api_key": "app-key-1",
            "service_code": "public_facilities.lighting",
            "address_string": f"phase 1 building {i}",
            "description": f"corridor light out on floor {i}",
        }
        posted = await c.post(f"{BASE}/requests.json", data=form)
        assert posted.status_code == 201, posted.text
        rid = posted.json()[0]["service_request_id"]
        # At once, no waiting: by id, by token, in both formats, with and without the jurisdiction.
        [one] = (await c.get(f"{BASE}/requests/{rid}.json")).json()
        assert one["service_request_id"] == rid and one["description"] == form["description"], one
        assert one["status"] == "open" and one["service_code"] == "public_facilities.lighting"
        as_xml = await c.get(f"{BASE}/requests/{rid}.xml", params={"jurisdiction_id": COMMUNITY})
        assert as_xml.status_code == 200 and xml(as_xml.content).find("request/service_request_id").text == rid
        [token] = (await c.get(f"{BASE}/tokens/{rid}.json")).json()
        assert token == {"service_request_id": rid, "token": rid}
    # What no POST returned is still not found, and another jurisdiction does not see it.
    assert (await c.get(f"{BASE}/requests/o311-nothing.json")).status_code == 404
    elsewhere = await c.get(f"{BASE}/requests/{rid}.json", params={"jurisdiction_id": "elsewhere"})
    assert elsewhere.status_code == 404
