"""The issues service's HTTP routes: thin translators between HTTP and commands or queries.

* :mod:`.issues` — ``/v1/communities/{c}/issues…``: report, move through the lifecycle, the board;
* :mod:`.hotline` — ``/v1/communities/{c}/hotline/orders…``: the 12345 hotline's work orders;
* :mod:`.statistics` — ``/v1/communities/{c}/statistics``, ``/v1/streets/{s}/statistics``: the figures;
* :mod:`.open311` — ``/open311/v2/…``: Open311 GeoReport v2.
"""

from __future__ import annotations

from fastapi import APIRouter

from . import hotline, issues, open311, statistics

#: Every router of the service, in the order the app includes them.
ROUTERS: tuple[APIRouter, ...] = (issues.router, hotline.router, statistics.router, open311.router)

__all__ = ["ROUTERS", "hotline", "issues", "open311", "statistics"]
