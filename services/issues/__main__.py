"""`python -m services.issues`: serve the issues service on its port."""

from services.issues.app import SPEC
from shared.service import serve

if __name__ == "__main__":
    serve(SPEC)
