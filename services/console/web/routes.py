"""The console's pages, one router per area; :data:`ROUTERS` is what the service serves."""

from __future__ import annotations

from .account_pages import router as account_router
from .auth_pages import router as auth_router
from .directory_pages import router as directory_router
from .household_pages import router as household_router
from .live_page import router as live_router
from .map_pages import router as map_router
from .problem_pages import router as problem_router
from .statistics_pages import router as statistics_router
from .work_pages import router as work_router

ROUTERS = [
    auth_router,
    live_router,
    work_router,
    directory_router,
    account_router,
    household_router,
    map_router,
    problem_router,
    statistics_router,
]
