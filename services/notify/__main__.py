"""`python -m services.notify`: serve the notify service on its port."""

from services.notify.app import SPEC
from shared.service import serve

if __name__ == "__main__":
    serve(SPEC)
