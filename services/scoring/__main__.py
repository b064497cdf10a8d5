"""`python -m services.scoring`: serve the scoring service on its port."""

from services.scoring.app import SPEC
from shared.service import serve

if __name__ == "__main__":
    serve(SPEC)
