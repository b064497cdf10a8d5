"""Events of the console context: people's accounts — opened, given a role and scope, their
passwords set, disabled — and their sign-ins, failed sign-ins and lock-outs.

Every account's events are stored under the reserved community token :data:`ACCOUNTS_COMMUNITY`
(an account of a street, of ops or of the hotline has no community of its own); the aggregate id
is the username.  Password hashes (Argon2id) travel sealed (AES-GCM under the console's own key),
so the other services, which read the whole stream, never hold them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Literal

from pydantic import AwareDatetime, Field

from .envelope import Event, Payload

#: The community token every account event is stored under; no community may be registered with a
#: leading underscore, so it names none.
ACCOUNTS_COMMUNITY = "_accounts"

#: A username: lower-case letters, digits, ``_`` and ``-``, 3 to 32 characters (a subject token).
USERNAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{2,31}$"

AccountRole = Literal["grid_worker", "secretary", "street_admin", "agency", "hotline", "ops"]
AgencyKind = Literal["property_management", "police", "street_office", "urban_management"]


class _AccountEvent(Event):
    context: ClassVar[str] = "console"
    aggregate_kind: ClassVar[str] = "account"


class Scope(Payload):
    """What an account's role reaches: the claims of ``shared.auth.Principal``."""

    role: AccountRole
    community: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,64}$")
    street: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,64}$")
    grid: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,64}$")
    worker_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,64}$")
    agency: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,64}$")
    agency_kind: AgencyKind | None = None


class AccountOpenedData(Payload):
    username: str = Field(pattern=USERNAME_PATTERN)
    display_name: str = Field(min_length=1, max_length=100)
    scope: Scope
    #: The first password's Argon2id hash, sealed.
    password_sealed: str = Field(max_length=1000)
    #: The person must set their own at first sign-in (always, but for the demo's ready-made accounts).
    one_time: bool = True


class AccountOpened(_AccountEvent):
    """An account was opened for a person, with one role and its scope and a one-time password."""

    type: Literal["AccountOpened"] = "AccountOpened"
    data: AccountOpenedData


class AccountRoleGrantedData(Payload):
    scope: Scope


class AccountRoleGranted(_AccountEvent):
    """An account's role and scope were replaced (granting one revokes the one before)."""

    type: Literal["AccountRoleGranted"] = "AccountRoleGranted"
    data: AccountRoleGrantedData


class AccountPasswordSetData(Payload):
    password_sealed: str = Field(max_length=1000)
    #: True for a password someone else set (a reset): the person must replace it at sign-in.
    one_time: bool
    reason: Literal["first_sign_in", "changed", "reset"]


class AccountPasswordSet(_AccountEvent):
    """A password was set: by the person themselves, or reset by an administrator (one-time)."""

    type: Literal["AccountPasswordSet"] = "AccountPasswordSet"
    data: AccountPasswordSetData


class AccountStatusData(Payload):
    reason: str = Field(default="", max_length=200)


class AccountDisabled(_AccountEvent):
    """An account was disabled: it cannot sign in, and its open sessions end."""

    type: Literal["AccountDisabled"] = "AccountDisabled"
    data: AccountStatusData


class AccountEnabled(_AccountEvent):
    """A disabled account was enabled again."""

    type: Literal["AccountEnabled"] = "AccountEnabled"
    data: AccountStatusData


class SignInData(Payload):
    #: A digest of the client's address (no address is kept in the stream).
    client: str = Field(default="", max_length=64)


class AccountSignedIn(_AccountEvent):
    """The person signed in with the right password."""

    type: Literal["AccountSignedIn"] = "AccountSignedIn"
    data: SignInData


class SignInFailedData(Payload):
    client: str = Field(default="", max_length=64)
    reason: Literal["wrong_password", "locked", "disabled"]
    #: Consecutive failures so far, this one included.
    failures: int = Field(ge=0, le=1_000_000)


class AccountSignInFailed(_AccountEvent):
    """A sign-in was refused: a wrong password, or an account locked or disabled."""

    type: Literal["AccountSignInFailed"] = "AccountSignInFailed"
    data: SignInFailedData


class AccountLockedData(Payload):
    until: AwareDatetime
    failures: int = Field(ge=0, le=1_000_000)


class AccountLocked(_AccountEvent):
    """Too many failed sign-ins in a row: the account is locked until ``until``."""

    type: Literal["AccountLocked"] = "AccountLocked"
    data: AccountLockedData


EVENTS: tuple[type[Event], ...] = (
    AccountOpened,
    AccountRoleGranted,
    AccountPasswordSet,
    AccountDisabled,
    AccountEnabled,
    AccountSignedIn,
    AccountSignInFailed,
    AccountLocked,
)

UPCASTERS: dict[tuple[str, int], Callable[[dict[str, Any]], dict[str, Any]]] = {}

__all__ = ["ACCOUNTS_COMMUNITY", "EVENTS", "USERNAME_PATTERN", "Scope"]
