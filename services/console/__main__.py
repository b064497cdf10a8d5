"""`python -m services.console`: serve the console on its port."""

from services.console.app import SPEC
from shared.service import serve

if __name__ == "__main__":
    serve(SPEC)
