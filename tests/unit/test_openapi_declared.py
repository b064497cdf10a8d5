"""The OpenAPI documents tell the truth (#15 item 11): every route of the four services declares
the answers the shared machinery can give it — 401/403 behind a token, 413 on a body, 422 from
the screen and validation in the real error format, 404/409/503 on the API — Open311 its 400 and
its own error format, a create the 200 of a duplicate, and the board exports their file types.

(The schemathesis run of ``make faults`` then finds no undeclared answer.)"""

from __future__ import annotations

from typing import Any

import pytest

from services.issues.app import build_app as issues_app
from services.notify.app import build_app as notify_app
from services.scoring.app import build_app as scoring_app
from services.visits.app import build_app as visits_app

APPS = {"visits": visits_app, "issues": issues_app, "scoring": scoring_app, "notify": notify_app}
WRITES = {"post", "put", "patch"}
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
#: The only API routes without a bearer token: a notification's signed acknowledgement link.
PUBLIC = {"/v1/ack/{token}"}


def operations(service: str) -> list[tuple[str, str, dict[str, Any]]]:
    doc = APPS[service]().openapi()
    return [(path, method, op) for path, item in doc["paths"].items() for method, op in item.items()]


@pytest.mark.parametrize("service", sorted(APPS))
def test_every_route_declares_what_the_shared_machinery_can_answer(service: str) -> None:
    missing: list[str] = []
    ops = operations(service)
    assert len(ops) > 8
    for path, method, op in ops:
        declared = set(op["responses"])
        wanted = {"422"}  # the path and query screen answers it on every route
        open311 = path.startswith("/open311/")
        if open311:
            wanted |= {"400", "404", "503"} | ({"201", "403", "413", "429"} if method in WRITES else {"200"})
        elif path.startswith("/v1/"):
            wanted |= {"404", "503"} | ({"409", "413"} if method in WRITES else set())
            if path not in PUBLIC:
                wanted |= {"401", "403"}
                assert op.get("security"), (method, path)  # behind require(…)
            if "201" in declared:
                wanted.add("200")  # a create answers a duplicate 200
        if not wanted <= declared:
            missing.append(f"{method} {path}: {sorted(wanted - declared)}")
        for status in declared - {"200", "201", "202", "204"}:
            schema = op["responses"][status].get("content", {}).get("application/json", {}).get("schema", {})
            # FastAPI's own 422 (``{"detail": …}``) is not what any gridwork route answers.
            assert "HTTPValidationError" not in str(schema), (method, path, status)
            if open311:
                assert schema.get("type") == "array", (method, path, status, schema)
            elif path.startswith("/v1/"):
                assert "ErrorBody" in str(schema) or "error" in schema.get("properties", {}), (method, path, status)
    assert not missing, "\n".join(missing)


def test_a_board_export_is_declared_as_the_files_it_answers() -> None:
    paths = scoring_app().openapi()["paths"]
    for path in ("/v1/communities/{community}/board/export", "/v1/streets/{street}/board/export"):
        content = paths[path]["get"]["responses"]["200"]["content"]
        assert set(content) == {"text/csv", XLSX}, content


def test_open311_declares_its_formats_and_201() -> None:
    paths = issues_app().openapi()["paths"]
    post = paths["/open311/v2/{name}"]["post"]["responses"]
    assert "200" not in post and set(post["201"]["content"]) == {"application/json", "application/xml"}
    assert post["400"]["content"]["application/json"]["example"] == [
        {"code": 400, "description": post["400"]["description"]}
    ]
