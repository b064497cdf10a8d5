"""Which buttons a problem's page shows: the console's reading of the issues service's rules (the
service still decides), and the statistics chart drawn on the server."""

from __future__ import annotations

from typing import Any

import pytest

from services.console.web.i18n import Translator
from services.console.web.problem_pages import actions_for, when
from services.console.web.statistics_pages import bar_chart


def issue(status: str, **extra: Any) -> dict[str, Any]:
    return {"status": status, "assignees": [], **extra}


@pytest.mark.parametrize(
    ("role", "status", "expected"),
    [
        ("secretary", "reported", ["accept", "escalate", "redact"]),
        ("secretary", "accepted", ["assign", "escalate", "redact"]),
        ("secretary", "resolved", ["verify", "reopen", "redact"]),
        ("secretary", "verified", ["reopen", "close", "redact"]),
        ("secretary", "closed", ["reopen", "redact"]),
        ("street_admin", "reported", ["escalate"]),
        ("street_admin", "closed", []),
        ("grid_worker", "reported", ["accept", "escalate"]),
        ("agency", "reported", []),
        ("agency", "resolved", []),
    ],
)
def test_the_buttons_follow_the_role_and_the_state(role: str, status: str, expected: list[str]) -> None:
    assert actions_for(role, issue(status)) == expected


def test_an_agency_resolves_what_is_assigned_to_an_agency_and_acknowledges_what_was_sent_to_it() -> None:
    with_police = issue("assigned", assignees=[{"kind": "police", "id": "zhongnanlu-police"}])
    assert actions_for("agency", with_police, unacked=1) == ["resolve", "acknowledge"]
    with_worker = issue("assigned", assignees=[{"kind": "worker", "id": "w01"}])
    assert actions_for("agency", with_worker) == []
    # a grid worker does not take a case back from the agency
    assert "resolve" not in actions_for("grid_worker", with_police)
    assert "assign" not in actions_for("grid_worker", with_police)
    assert "resolve" in actions_for("grid_worker", with_worker)


def test_a_12345_order_is_verified_and_closed_by_the_hotline_alone() -> None:
    order = issue("resolved", hotline_order_no="GD1")
    assert "verify" not in actions_for("secretary", order)
    assert "close" not in actions_for("secretary", issue("verified", hotline_order_no="GD1"))


def test_merge_is_offered_only_beside_a_suggested_duplicate() -> None:
    assert "merge" not in actions_for("secretary", issue("reported"))
    assert "merge" in actions_for("secretary", issue("reported"), duplicates=1)


def test_times_are_shown_in_the_community_s_zone() -> None:
    assert when("2026-12-08T03:00:00+00:00") == "2026-12-08 11:00"
    assert when(None) == "" and when("") == ""


def test_the_chart_is_an_svg_image_with_one_bar_per_known_rate() -> None:
    t = Translator("en")
    groups = [{"rates": {"response": 0.5, "resolution": 1.0, "satisfaction": None}}]
    svg = bar_chart(t, groups, ["<Grid 1>"])
    assert svg.startswith("<svg") and 'role="img"' in svg and "<title" in svg
    assert "&lt;Grid 1&gt;" in svg and "<Grid 1>" not in svg  # labels escaped
    assert "50.0%" in svg and "100.0%" in svg and "—" in svg
