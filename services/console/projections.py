"""The console's read model of accounts: who can sign in, in what role, and their recent sign-ins.

Sign-in itself reads the account from its events (always current); this table serves the lists
(the accounts page, a session's check that its account is still enabled) and the sign-in log.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from shared.db import Conn
from shared.events.console import (
    AccountDisabled,
    AccountEnabled,
    AccountLocked,
    AccountOpened,
    AccountPasswordSet,
    AccountRoleGranted,
    AccountSignedIn,
    AccountSignInFailed,
)
from shared.eventstore import StoredEvent

DDL = """
CREATE TABLE IF NOT EXISTS accounts (
    username      text PRIMARY KEY,
    display_name  text NOT NULL,
    role          text NOT NULL,
    community     text,
    street        text,
    grid          text,
    worker_id     text,
    agency        text,
    agency_kind   text,
    must_change   boolean NOT NULL DEFAULT true,
    disabled      boolean NOT NULL DEFAULT false,
    failures      integer NOT NULL DEFAULT 0,
    locked_until  timestamptz,
    last_sign_in  timestamptz,
    opened_at     timestamptz NOT NULL,
    opened_by     text NOT NULL,
    changed_at    timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS accounts_community ON accounts (community);
CREATE TABLE IF NOT EXISTS sign_in_log (
    seq       bigint PRIMARY KEY,
    username  text NOT NULL,
    at        timestamptz NOT NULL,
    kind      text NOT NULL,
    actor     text NOT NULL,
    detail    text NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS sign_in_log_user ON sign_in_log (username, seq DESC);
"""

_SCOPE_COLUMNS = ("role", "community", "street", "grid", "worker_id", "agency", "agency_kind")

#: What the account log says of each event (the accounts page shows it).
_LOG_KIND = {
    "AccountOpened": "opened",
    "AccountRoleGranted": "role_granted",
    "AccountPasswordSet": "password_set",
    "AccountDisabled": "disabled",
    "AccountEnabled": "enabled",
    "AccountSignedIn": "signed_in",
    "AccountSignInFailed": "sign_in_failed",
    "AccountLocked": "locked",
}


class ConsoleAccounts:
    """Folds account events into ``accounts`` and ``sign_in_log``."""

    name = "console_accounts"
    ddl = DDL
    event_types: ClassVar[Sequence[str]] = tuple(_LOG_KIND)

    async def apply(self, conn: Conn, events: Sequence[StoredEvent]) -> None:
        for stored in events:
            event = stored.event()
            user, at = event.aggregate_id, event.occurred_at
            detail = ""
            if isinstance(event, AccountOpened):
                scope = event.data.scope
                await conn.execute(
                    "INSERT INTO accounts (username, display_name, role, community, street, grid, worker_id, agency,"
                    " agency_kind, opened_at, opened_by, changed_at, must_change)"
                    " VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$10,$12) ON CONFLICT (username) DO NOTHING",
                    user,
                    event.data.display_name,
                    *(getattr(scope, c) for c in _SCOPE_COLUMNS),
                    at,
                    event.actor,
                    event.data.one_time,
                )
                detail = scope.role
            elif isinstance(event, AccountRoleGranted):
                scope = event.data.scope
                await conn.execute(
                    "UPDATE accounts SET role=$2, community=$3, street=$4, grid=$5, worker_id=$6, agency=$7,"
                    " agency_kind=$8, changed_at=$9 WHERE username=$1",
                    user,
                    *(getattr(scope, c) for c in _SCOPE_COLUMNS),
                    at,
                )
                detail = scope.role
            elif isinstance(event, AccountPasswordSet):
                await conn.execute(
                    "UPDATE accounts SET must_change=$2, failures=0, locked_until=NULL, changed_at=$3"
                    " WHERE username=$1",
                    user,
                    event.data.one_time,
                    at,
                )
                detail = event.data.reason
            elif isinstance(event, AccountDisabled | AccountEnabled):
                disabled = isinstance(event, AccountDisabled)
                await conn.execute(
                    "UPDATE accounts SET disabled=$2, changed_at=$3,"
                    " failures=CASE WHEN $2 THEN failures ELSE 0 END,"
                    " locked_until=CASE WHEN $2 THEN locked_until ELSE NULL END WHERE username=$1",
                    user,
                    disabled,
                    at,
                )
                detail = event.data.reason
            elif isinstance(event, AccountSignedIn):
                await conn.execute(
                    "UPDATE accounts SET failures=0, locked_until=NULL, last_sign_in=$2 WHERE username=$1", user, at
                )
            elif isinstance(event, AccountSignInFailed):
                await conn.execute("UPDATE accounts SET failures=$2 WHERE username=$1", user, event.data.failures)
                detail = event.data.reason
            elif isinstance(event, AccountLocked):
                await conn.execute(
                    "UPDATE accounts SET locked_until=$2, failures=$3 WHERE username=$1",
                    user,
                    event.data.until,
                    event.data.failures,
                )
                detail = event.data.until.isoformat()
            await conn.execute(
                "INSERT INTO sign_in_log (seq, username, at, kind, actor, detail) VALUES ($1,$2,$3,$4,$5,$6)"
                " ON CONFLICT (seq) DO NOTHING",
                stored.seq,
                user,
                at,
                _LOG_KIND[event.type],
                event.actor,
                detail,
            )
