"""Reads of the visits service's read models (and of a household's or account's own stream where
the read model may lag), for the routes: the SQL lives here.

* :mod:`.households` — the community, its directory lists, its households, one household;
* :mod:`.work` — the shifts open now, a worker's shift and day, face-to-face sessions, volunteer points;
* :mod:`.ledger` — ledger completion, the CSV export, the rows an import compares with;
* :mod:`.map` — the community's plan: phases, buildings, visit coverage.
"""

from __future__ import annotations

from .households import community_summary, directory_entries, household_row, list_households
from .ledger import completion, ledger_entries, ledger_export_rows
from .map import community_map, this_month
from .work import list_sessions, open_shifts, shift_status, volunteer_balance, worker_day, worker_records

__all__ = [
    "community_map",
    "community_summary",
    "completion",
    "directory_entries",
    "household_row",
    "ledger_entries",
    "ledger_export_rows",
    "list_households",
    "list_sessions",
    "open_shifts",
    "shift_status",
    "this_month",
    "volunteer_balance",
    "worker_day",
    "worker_records",
]
