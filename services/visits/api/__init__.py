"""HTTP API of the visits service, under ``/v1/communities/{community}/…``: thin routes, no business ifs."""

from __future__ import annotations

from .directory import router as directory_router
from .ledger import router as ledger_router
from .work import router as work_router

# The field app's hot paths (visits, sync) first: routing and the HTTP metrics match in order.
ROUTERS = (work_router, directory_router, ledger_router)

__all__ = ["ROUTERS"]
