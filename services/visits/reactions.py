"""Reactions of the visits service: none yet.

Visits only records facts — who and where, the 5+1 work, the ledger — as the people in the field
report them; nothing here waits for an event to do something else.  What follows from its events
happens in the services that consume them: problems noted on a visit, session or council become
issues in the issues service, and the work counts towards the quotas in the scoring service.
A process manager, timer or outbox worker of this service would be listed here, in
:data:`REACTIONS`, and run by the app as a background task.
"""

from __future__ import annotations

from shared.service import Background

#: Background tasks ("when X happens, do Y") this service runs: none.
REACTIONS: tuple[Background, ...] = ()
