"""Application functions of the visits service: load, decide, append.

Each takes a domain command (translated from HTTP at the api edge), the caller where authorization
depends on who it is, and ``deps`` (keyword-only); none knows about HTTP.  Work facts with their
own id (visit, session, council…) are decided by a pure function from the command and pre-fetched
lookups, then appended at version 0: that is what makes a single request and a 500-record sync
batch share every rule, and what makes a re-send land once.

* :mod:`.directory` — communities, buildings, grids, workers, persons;
* :mod:`.households` — the ledger entries: register, update, tag, erase (PIPL);
* :mod:`.work` — one-off work facts, shifts, volunteer points;
* :mod:`.sync` — a phone's offline batch;
* :mod:`.ledger` — a ledger sheet imported.
"""

from __future__ import annotations

from .common import acting_worker
from .directory import define_entry, move_community, register_community
from .households import erase_household, household_view, register_household, tag_household, update_household
from .ledger import export_ledger, import_ledger
from .sync import store_offline_work
from .work import change_account, end_shift, log_work, start_shift

__all__ = [
    "acting_worker",
    "change_account",
    "define_entry",
    "end_shift",
    "erase_household",
    "export_ledger",
    "household_view",
    "import_ledger",
    "log_work",
    "move_community",
    "register_community",
    "register_household",
    "start_shift",
    "store_offline_work",
    "tag_household",
    "update_household",
]
