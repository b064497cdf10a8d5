"""The visits service splits into processes: the API, the projections, or both."""

from __future__ import annotations


def test_a_process_runs_the_api_the_projections_or_both() -> None:
    from services.visits.app import SPEC, spec_for
    from services.visits.settings import VisitsSettings

    both = spec_for(VisitsSettings(visits_role="all"))
    api = spec_for(VisitsSettings(visits_role="api"))
    folds = spec_for(VisitsSettings(visits_role="projections"))
    assert both is SPEC and {p.name for p in both.projections} == {
        "visits_directory",
        "visits_activity",
        "visits_coverage",
        "visits_on_shift",
        "visits_records",
    }
    assert api.projections == [] and api.routers == SPEC.routers
    assert folds.routers == [] and folds.projections == SPEC.projections
