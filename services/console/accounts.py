"""The accounts' application functions: open an account, sign in, set or reset a password, grant a
role, disable and enable — each loads the account from its events, decides, and appends.

Who may manage whose account (ops: everyone; a secretary: their own community's grid workers and
secretaries) is checked here too, on the state the command applies to.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from shared.auth import Principal
from shared.errors import Conflict, Forbidden, NotFound
from shared.events import Event, Payload, now
from shared.events.console import (
    ACCOUNTS_COMMUNITY,
    AccountDisabled,
    AccountEnabled,
    AccountLocked,
    AccountOpened,
    AccountOpenedData,
    AccountPasswordSet,
    AccountPasswordSetData,
    AccountRoleGranted,
    AccountRoleGrantedData,
    AccountSignedIn,
    AccountStatusData,
    Scope,
    SignInData,
)
from shared.eventstore import Aggregate, ConcurrencyError, EventStore, Loaded

from .domain.accounts import (
    AccountError,
    AccountState,
    LockPolicy,
    check_new_password,
    check_scope,
    decide_failure,
    evolve,
    initial,
    refusal,
)
from .passwords import Passwords

ACCOUNT = Aggregate("console", "account", initial, evolve, None)

#: Roles a secretary may give within their own community (a secretary cannot make a street admin).
SECRETARY_GRANTS = ("grid_worker", "secretary")


@dataclass(frozen=True)
class AccountsDeps:
    store: EventStore
    passwords: Passwords
    policy: LockPolicy


async def load(username: str, *, deps: AccountsDeps) -> Loaded[AccountState]:
    return await deps.store.load(ACCOUNT, ACCOUNTS_COMMUNITY, username)


async def _append(
    loaded: Loaded[AccountState],
    username: str,
    actor: str,
    events: Sequence[tuple[type[Event], Payload]],
    *,
    deps: AccountsDeps,
) -> None:
    built = [
        cls.new(community=ACCOUNTS_COMMUNITY, aggregate_id=username, actor=actor, data=data) for cls, data in events
    ]
    await deps.store.append(built, loaded.version, expected_seq=loaded.last_seq or None)


def may_manage(manager: Principal, scope: Scope) -> bool:
    """Whether ``manager`` may open, change or reset an account with ``scope``."""
    if manager.role == "ops":
        return True
    if manager.role == "secretary":
        return scope.role in SECRETARY_GRANTS and scope.community == manager.community
    return False


def _check_manager(manager: Principal, scope: Scope) -> None:
    if not may_manage(manager, scope):
        raise Forbidden(f"a {manager.role} cannot manage a {scope.role} account of this scope", field="role")


async def open_account(
    username: str,
    display_name: str,
    scope: Scope,
    password: str,
    *,
    by: Principal | None,
    deps: AccountsDeps,
    one_time: bool = True,
) -> None:
    """Open an account with a one-time first password (``by`` None: the command line, as ops;
    ``one_time`` False only for the demo's ready-made accounts)."""
    check_scope(scope)
    if by is not None:
        _check_manager(by, scope)
    loaded = await load(username, deps=deps)
    if loaded.state.exists:
        raise Conflict(f"the username {username} is taken", field="username")
    sealed = await deps.passwords.sealed_hash(password, username)
    data = AccountOpenedData(
        username=username, display_name=display_name, scope=scope, password_sealed=sealed, one_time=one_time
    )
    try:
        await _append(loaded, username, by.sub if by else "cli", [(AccountOpened, data)], deps=deps)
    except ConcurrencyError as err:
        raise Conflict(f"the username {username} is taken", field="username") from err


def client_digest(address: str) -> str:
    """What the stream keeps of a client's address: a short digest, enough to tell repeats apart."""
    return hashlib.sha256(address.encode()).hexdigest()[:16] if address else ""


@dataclass(frozen=True)
class SignIn:
    """The outcome of a sign-in: the account's state when it succeeded, else why it failed."""

    state: AccountState | None
    reason: str | None = None


async def sign_in(username: str, password: str, client: str, *, deps: AccountsDeps) -> SignIn:
    """Check a password; record the sign-in, the failure, and the lock-out it may cause."""
    for _ in range(3):  # two sign-ins racing on one account: reload and decide again
        loaded = await load(username, deps=deps)
        state, moment = loaded.state, now()
        why = refusal(state, moment)
        if why == "unknown":
            await deps.passwords.burn(password)
            return SignIn(None, "wrong_password")  # the same answer as a wrong password
        ok = why is None and await deps.passwords.verify(state.password_sealed, username, password)
        digest = client_digest(client)
        events: list[tuple[type[Event], Payload]]
        if ok:
            events = [(AccountSignedIn, SignInData(client=digest))]
        else:
            events = list(decide_failure(state, moment, why or "wrong_password", deps.policy, digest))
        try:
            await _append(loaded, username, username, events, deps=deps)
        except ConcurrencyError:
            continue
        if ok:
            return SignIn(evolve(state, _fake_signed_in(username, moment)))
        return SignIn(None, "locked" if any(cls is AccountLocked for cls, _ in events) else (why or "wrong_password"))
    raise Conflict("too many sign-ins at once for this account; try again", field="username")


def _fake_signed_in(username: str, moment: datetime) -> Event:
    return AccountSignedIn.new(
        community=ACCOUNTS_COMMUNITY, aggregate_id=username, actor=username, data={"client": ""}, occurred_at=moment
    )


async def set_own_password(username: str, current: str, new: str, *, deps: AccountsDeps) -> None:
    """The person replaces their password (the one-time one at first sign-in, or any later)."""
    loaded = await load(username, deps=deps)
    state = loaded.state
    if not state.exists or state.disabled:
        raise NotFound("no such account", field="username")
    if not await deps.passwords.verify(state.password_sealed, username, current):
        raise AccountError("the current password is wrong", field="current_password")
    if new == current:
        raise AccountError("choose a password other than the current one", field="password")
    check_new_password(new, username)
    sealed = await deps.passwords.sealed_hash(new, username)
    reason = "first_sign_in" if state.must_change else "changed"
    data = AccountPasswordSetData(password_sealed=sealed, one_time=False, reason=reason)  # type: ignore[arg-type]
    await _append(loaded, username, username, [(AccountPasswordSet, data)], deps=deps)


async def _managed(username: str, by: Principal, *, deps: AccountsDeps) -> Loaded[AccountState]:
    loaded = await load(username, deps=deps)
    if not loaded.state.exists or loaded.state.scope is None:
        raise NotFound(f"no account {username}", field="username")
    _check_manager(by, loaded.state.scope)
    return loaded


async def reset_password(username: str, password: str, *, by: Principal, deps: AccountsDeps) -> None:
    """An administrator gives the person a new one-time password (and so lifts a lock-out)."""
    loaded = await _managed(username, by, deps=deps)
    sealed = await deps.passwords.sealed_hash(password, username)
    data = AccountPasswordSetData(password_sealed=sealed, one_time=True, reason="reset")
    await _append(loaded, username, by.sub, [(AccountPasswordSet, data)], deps=deps)


async def grant(username: str, scope: Scope, *, by: Principal, deps: AccountsDeps) -> None:
    """Replace an account's role and scope (within what ``by`` manages, before and after)."""
    check_scope(scope)
    _check_manager(by, scope)
    loaded = await _managed(username, by, deps=deps)
    if loaded.state.scope == scope:
        return
    data = AccountRoleGrantedData(scope=scope)
    await _append(loaded, username, by.sub, [(AccountRoleGranted, data)], deps=deps)


async def set_enabled(username: str, enabled: bool, reason: str, *, by: Principal, deps: AccountsDeps) -> None:
    """Disable an account (it cannot sign in; its sessions end) or enable it again."""
    if username == by.sub and not enabled:
        raise AccountError("you cannot disable your own account", field="username")
    loaded = await _managed(username, by, deps=deps)
    if loaded.state.disabled == (not enabled):
        return
    cls: type[Event] = AccountEnabled if enabled else AccountDisabled
    data = AccountStatusData(reason=reason)
    await _append(loaded, username, by.sub, [(cls, data)], deps=deps)
