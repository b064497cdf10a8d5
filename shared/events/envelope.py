"""The envelope every gridwork event travels in (CloudEvents-shaped).

An event is a frozen pydantic model: the envelope fields below plus a ``data`` payload whose
model is specific to the event type.  Producers build events with :meth:`Event.new`; the event
store fills in ``aggregate_version`` when it appends.
"""

from __future__ import annotations

import hashlib
import os
import time
from datetime import date, datetime
from functools import lru_cache
from typing import Any, ClassVar, Self
from uuid import UUID
from zoneinfo import ZoneInfo

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

SHANGHAI = ZoneInfo("Asia/Shanghai")

#: Characters allowed in a subject token (community, aggregate id).  NATS forbids dots, spaces
#: and wildcards inside a token; we are stricter so ids read well in URLs and logs too.
TOKEN_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"


def now() -> datetime:
    """The current time in Asia/Shanghai, the default zone of every gridwork timestamp."""
    return datetime.now(SHANGHAI)


def shanghai_day(moment: datetime | str) -> date:
    """The calendar day in Shanghai of a moment (a datetime, or an ISO 8601 text as events store it):
    the day a 5+1 quota counts it on, whatever zone the phone sent."""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return moment.astimezone(SHANGHAI).date()


def shanghai_day_key(stamp: str) -> str:
    """The Shanghai day (``YYYY-MM-DD``) of an ISO 8601 timestamp, fast: events are stamped in
    +08:00, so it is the string's first ten characters; another offset (a phone in UTC) is converted."""
    if stamp.endswith("+08:00"):
        return stamp[:10]
    return _day_key_of_other_zone(stamp)


@lru_cache(maxsize=8192)
def _day_key_of_other_zone(stamp: str) -> str:
    return shanghai_day(stamp).isoformat()


def uuid7(at: datetime | None = None, key: str | None = None) -> UUID:
    """A time-ordered UUID (RFC 9562 version 7).

    With ``key`` the random part is derived from the key, so the same (time, key) always gives
    the same id: a retried command then produces the same event id and JetStream dedupes it.
    """
    ms = int((at.timestamp() if at else time.time()) * 1000) & ((1 << 48) - 1)
    rand = hashlib.sha256(key.encode()).digest()[:10] if key is not None else os.urandom(10)
    tail = int.from_bytes(rand, "big")
    rand_a = (tail >> 68) & 0xFFF
    rand_b = tail & ((1 << 62) - 1)
    value = (ms << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b
    return UUID(int=value)


class Payload(BaseModel):
    """Base of every event's ``data``: frozen, strict about unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Event(BaseModel):
    """One fact that happened in a community, in the envelope every event shares.

    ``context`` and ``aggregate_type`` are class-level: each event type belongs to exactly one
    bounded context and one kind of aggregate.  They form the event's subject
    ``<ns>.<community>.<context>.<aggregate_type>.<aggregate_id>.<type>``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    context: ClassVar[str] = ""
    aggregate_kind: ClassVar[str] = ""

    id: UUID = Field(default_factory=uuid7, description="Time-ordered event id (UUIDv7)")
    type: str = Field(description="Past-tense event type, e.g. VisitLogged")
    schema_version: int = Field(default=1, ge=1)
    source: str = Field(description="Service that produced the event")
    community: str = Field(pattern=TOKEN_PATTERN)
    aggregate_type: str = Field(pattern=TOKEN_PATTERN)
    aggregate_id: str = Field(pattern=TOKEN_PATTERN)
    aggregate_version: int = Field(default=0, ge=0, description="Position in the aggregate, from 1")
    occurred_at: AwareDatetime = Field(default_factory=now, description="When the work happened")
    recorded_at: AwareDatetime = Field(default_factory=now, description="When gridwork recorded it")
    actor: str = Field(description="Who did it: worker id, service, hotline, resident…")
    correlation_id: UUID | None = None
    causation_id: UUID | None = None
    data: Payload

    @classmethod
    def new(
        cls,
        *,
        community: str,
        aggregate_id: str,
        actor: str,
        data: Any,
        occurred_at: datetime | None = None,
        correlation_id: UUID | None = None,
        causation_id: UUID | None = None,
        idempotency_key: str | None = None,
        source: str | None = None,
    ) -> Self:
        """Build an event of this type.  With ``idempotency_key`` the event id is deterministic."""
        when = occurred_at or now()
        if when.tzinfo is None:
            when = when.replace(tzinfo=SHANGHAI)
        key = f"{cls.__name__}:{community}:{aggregate_id}:{idempotency_key}" if idempotency_key else None
        return cls(
            id=uuid7(when, key) if key else uuid7(),
            type=cls.__name__,
            source=source or cls.context,
            community=community,
            aggregate_type=cls.aggregate_kind,
            aggregate_id=aggregate_id,
            occurred_at=when,
            actor=actor,
            correlation_id=correlation_id,
            causation_id=causation_id,
            data=data,
        )

    def subject(self, namespace: str = "gw") -> str:
        """The NATS subject this event is stored under."""
        return f"{namespace}.{self.community}.{self.context}.{self.aggregate_type}.{self.aggregate_id}.{self.type}"
