"""`python -m services.visits`: serve the visits service on its port (GRIDWORK_VISITS_ROLE picks what runs)."""

from services.visits.app import spec_for
from services.visits.settings import VisitsSettings
from shared.service import serve

if __name__ == "__main__":
    serve(spec_for(VisitsSettings()))
