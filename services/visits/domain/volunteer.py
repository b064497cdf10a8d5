"""Volunteer service for points (志愿服务换积分), one account per household.

The account's aggregate id is the household id, so a redemption can never spend more than the
balance, even when two phones redeem at once; the ids already counted make a re-send change nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, ClassVar

from pydantic import BaseModel, Field

from shared.errors import Conflict
from shared.events import Event
from shared.events.visits import (
    VolunteerPointsRedeemed,
    VolunteerPointsRedeemedData,
    VolunteerServiceLogged,
    VolunteerServiceLoggedData,
)


class InsufficientPoints(Conflict):
    """A redemption of more points than the household holds (409)."""

    code = "insufficient_points"


class VolunteerAccount(BaseModel):
    """A household's volunteer points: earned, redeemed, and the ids already counted."""

    earned: int = 0
    redeemed: int = 0
    seen: list[str] = Field(default_factory=list)

    @property
    def balance(self) -> int:
        """Points earned and not yet redeemed."""
        return self.earned - self.redeemed


def evolve_volunteer(state: VolunteerAccount, event: Event) -> VolunteerAccount:
    """Fold one volunteer event into the account."""
    data: Any = event.data
    if isinstance(event, VolunteerServiceLogged):
        return VolunteerAccount(
            earned=state.earned + data.points, redeemed=state.redeemed, seen=[*state.seen, data.service_id]
        )
    if isinstance(event, VolunteerPointsRedeemed):
        return VolunteerAccount(
            earned=state.earned, redeemed=state.redeemed + data.points, seen=[*state.seen, data.redemption_id]
        )
    return state


@dataclass(frozen=True, slots=True, kw_only=True)
class LogVolunteerService:
    """Credit a resident's volunteer service, e.g. the dog-walking patrol.  Without ``points`` the hours
    earn ``points_per_hour`` each."""

    kind: ClassVar[str] = "volunteer_service"
    id_field: ClassVar[str] = "service_id"

    community: str
    record_id: str
    household_id: str
    activity: str
    hours: float
    points: int | None = None
    points_per_hour: int
    service_date: date | None = None
    worker_id: str | None = None
    at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class RedeemPoints:
    """Spend a household's volunteer points on ``item``."""

    kind: ClassVar[str] = "volunteer_redemption"
    id_field: ClassVar[str] = "redemption_id"

    community: str
    record_id: str
    household_id: str
    points: int
    item: str
    worker_id: str | None = None
    at: datetime


#: A change of a household's volunteer account.
AccountCommand = LogVolunteerService | RedeemPoints


def decide_volunteer(state: VolunteerAccount, cmd: AccountCommand, actor: str) -> list[Event]:
    """Credit service (the same service id once) or redeem points (never more than the balance)."""
    if isinstance(cmd, LogVolunteerService):
        if cmd.record_id in state.seen:
            return []
        points = cmd.points if cmd.points is not None else round(cmd.hours * cmd.points_per_hour)
        service = VolunteerServiceLoggedData(
            service_id=cmd.record_id,
            household_id=cmd.household_id,
            activity=cmd.activity,
            hours=cmd.hours,
            points=points,
            service_date=cmd.service_date,
        )
        return [
            VolunteerServiceLogged.new(
                community=cmd.community,
                aggregate_id=cmd.household_id,
                actor=actor,
                data=service,
                occurred_at=cmd.at,
                idempotency_key=f"service:{cmd.record_id}",
            )
        ]
    if cmd.record_id in state.seen:
        return []
    if cmd.points > state.balance:
        raise InsufficientPoints(
            f"cannot redeem {cmd.points} points: the balance is {state.balance}",
            field="points",
            balance=state.balance,
        )
    redemption = VolunteerPointsRedeemedData(
        redemption_id=cmd.record_id, household_id=cmd.household_id, points=cmd.points, item=cmd.item
    )
    return [
        VolunteerPointsRedeemed.new(
            community=cmd.community,
            aggregate_id=cmd.household_id,
            actor=actor,
            data=redemption,
            occurred_at=cmd.at,
            idempotency_key=f"redeem:{cmd.record_id}",
        )
    ]
