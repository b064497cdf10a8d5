"""HTTP API of the visits service, under ``/v1/communities/{community}/…``: thin routes, no business ifs."""

from __future__ import annotations

from .directory import router as directory_router
from .ledger import router as ledger_router
from .work import router as work_router

ROUTERS = (directory_router, ledger_router, work_router)

__all__ = ["ROUTERS"]
