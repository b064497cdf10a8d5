"""Accounts as a pure fold and pure decisions: who a person is in gridwork, and whether they may sign in.

``evolve(state, event)`` folds an account's events; the ``decide_*`` functions take the state and
a command's facts and return the events to append (or raise :class:`AccountError`).  Password
checking itself happens outside (a hash is verified by the service layer); here only its outcome
is decided on: a failure counts, enough failures in a row lock the account for a while.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from shared.errors import DomainError
from shared.events import Event, Payload
from shared.events.console import (
    AccountDisabled,
    AccountEnabled,
    AccountLocked,
    AccountLockedData,
    AccountOpened,
    AccountPasswordSet,
    AccountRoleGranted,
    AccountSignedIn,
    AccountSignInFailed,
    Scope,
    SignInFailedData,
)


class AccountError(DomainError):
    """A command on an account the account's state refuses."""

    status = 422
    code = "invalid"


@dataclass(frozen=True)
class AccountState:
    """One account as its events left it."""

    username: str = ""
    display_name: str = ""
    scope: Scope | None = None
    password_sealed: str = ""
    #: The password was set by someone else: the person must choose their own at sign-in.
    must_change: bool = True
    disabled: bool = False
    failures: int = 0
    locked_until: datetime | None = None
    last_sign_in: datetime | None = None

    @property
    def exists(self) -> bool:
        return self.scope is not None

    def locked_at(self, moment: datetime) -> bool:
        return self.locked_until is not None and moment < self.locked_until


def initial() -> AccountState:
    return AccountState()


def evolve(state: AccountState, event: Event) -> AccountState:
    """Fold one account event (other types leave the state as it is)."""
    if isinstance(event, AccountOpened):
        return AccountState(
            username=event.data.username,
            display_name=event.data.display_name,
            scope=event.data.scope,
            password_sealed=event.data.password_sealed,
            must_change=event.data.one_time,
        )
    if isinstance(event, AccountRoleGranted):
        return replace(state, scope=event.data.scope)
    if isinstance(event, AccountPasswordSet):
        # a new password also lifts a lock-out: that is what an administrator's reset is for
        return replace(
            state,
            password_sealed=event.data.password_sealed,
            must_change=event.data.one_time,
            failures=0,
            locked_until=None,
        )
    if isinstance(event, AccountDisabled):
        return replace(state, disabled=True)
    if isinstance(event, AccountEnabled):
        return replace(state, disabled=False, failures=0, locked_until=None)
    if isinstance(event, AccountSignedIn):
        return replace(state, failures=0, locked_until=None, last_sign_in=event.occurred_at)
    if isinstance(event, AccountSignInFailed):
        return replace(state, failures=event.data.failures)
    if isinstance(event, AccountLocked):
        return replace(state, locked_until=event.data.until, failures=event.data.failures)
    return state


@dataclass(frozen=True)
class LockPolicy:
    """How many failures in a row lock an account, and for how long."""

    max_failures: int = 5
    lock_minutes: float = 15


def refusal(state: AccountState, moment: datetime) -> str | None:
    """Why this account cannot sign in now, before its password is even checked (None: it may try)."""
    if not state.exists:
        return "unknown"
    if state.disabled:
        return "disabled"
    if state.locked_at(moment):
        return "locked"
    return None


def decide_failure(
    state: AccountState, moment: datetime, reason: str, policy: LockPolicy, client: str = ""
) -> list[tuple[type[Event], Payload]]:
    """The events of one refused sign-in: the failure, and a lock-out when it is one too many.

    A failure while locked or disabled is recorded but does not extend the lock (a guesser cannot
    keep a person locked out for ever by trying on)."""
    if reason != "wrong_password":
        return [(AccountSignInFailed, SignInFailedData(client=client, reason=reason, failures=state.failures))]  # type: ignore[arg-type]
    failures = state.failures + 1
    out: list[tuple[type[Event], Payload]] = [
        (AccountSignInFailed, SignInFailedData(client=client, reason="wrong_password", failures=failures))
    ]
    if failures >= policy.max_failures:
        until = moment + timedelta(minutes=policy.lock_minutes)
        out.append((AccountLocked, AccountLockedData(until=until, failures=failures)))
    return out


def check_new_password(password: str, username: str) -> None:
    """A password a person may choose: long enough, not their username, not one character repeated."""
    if len(password) < 10:
        raise AccountError("at least 10 characters", field="password")
    if len(password) > 256:
        raise AccountError("at most 256 characters", field="password")
    if password.lower() == username.lower() or len(set(password)) < 4:
        raise AccountError("too easy to guess", field="password")


def check_scope(scope: Scope) -> None:
    """The claims each role needs (and none it must not carry)."""
    needs: dict[str, tuple[str, ...]] = {
        "grid_worker": ("community", "grid", "worker_id"),
        "secretary": ("community",),
        "street_admin": ("street",),
        "agency": ("agency", "agency_kind"),
        "hotline": (),
        "ops": (),
    }
    for name in needs[scope.role]:
        if not getattr(scope, name):
            raise AccountError(f"a {scope.role} account needs a {name}", field=name)
