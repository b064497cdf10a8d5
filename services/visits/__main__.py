"""`python -m services.visits`: serve the visits service on its port."""

from services.visits.app import SPEC
from shared.service import serve

if __name__ == "__main__":
    serve(SPEC)
