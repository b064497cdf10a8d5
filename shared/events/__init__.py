"""The gridwork event catalogue: every event type in one discriminated union.

``decode(raw)`` turns stored bytes or a dict into the current model of its type, upcasting old
schema versions on the way.  A published schema never changes in place: add a version, keep an
upcaster from the old one.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any, Union

from pydantic import Field, TypeAdapter, ValidationError

from . import console, issues, notify, scoring, visits
from .common import CATEGORIES, LEVELS, Category, ContactMode, Level, Place, Severity, Target
from .envelope import SHANGHAI, TOKEN_PATTERN, Event, Payload, now, shanghai_day, shanghai_day_key, uuid7

EVENT_TYPES: dict[str, type[Event]] = {
    cls.__name__: cls for module in (visits, issues, scoring, notify, console) for cls in module.EVENTS
}

#: (type, stored version) → function raising a raw dict one version up.
UPCASTERS: dict[tuple[str, int], Callable[[dict[str, Any]], dict[str, Any]]] = {
    **visits.UPCASTERS,
    **issues.UPCASTERS,
    **scoring.UPCASTERS,
    **notify.UPCASTERS,
    **console.UPCASTERS,
}

#: The discriminated union of every event model, built at run time (so, to a type checker, just a value).
AnyEvent: Any = Annotated[Union[tuple(EVENT_TYPES.values())], Field(discriminator="type")]  # noqa: UP007
EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(AnyEvent)

# The current version of each type, read from its model's schema_version default.
CURRENT_VERSION: dict[str, int] = {
    name: cls.model_fields["schema_version"].default for name, cls in EVENT_TYPES.items()
}


class UnknownEventType(ValueError):
    """The stored event's type is not in this catalogue (written by a newer producer?)."""


def upcast(raw: dict[str, Any]) -> dict[str, Any]:
    """Raise a raw event dict to the current schema version of its type."""
    etype = raw.get("type")
    if etype not in CURRENT_VERSION:
        raise UnknownEventType(f"unknown event type {etype!r}")
    version = int(raw.get("schema_version", 1))
    while version < CURRENT_VERSION[etype]:
        step = UPCASTERS.get((etype, version))
        if step is None:
            raise ValueError(f"no upcaster for {etype} v{version}")
        raw = step(raw)
        version = int(raw["schema_version"])
    return raw


def decode(raw: bytes | str | dict[str, Any], type_hint: str | None = None) -> Event:
    """Decode a stored event (any schema version) into its current model.

    ``type_hint`` (the last token of the subject) lets current-version bytes skip the generic
    union and go straight to their model's JSON validator, about twice as fast.
    """
    if type_hint is not None and isinstance(raw, (bytes, str)) and type_hint in EVENT_TYPES:
        try:
            return EVENT_TYPES[type_hint].model_validate_json(raw)
        except ValidationError:
            pass  # an older schema version: upcast below
    if isinstance(raw, (bytes, str)):
        raw = json.loads(raw)
    assert isinstance(raw, dict)
    etype = raw.get("type")
    if etype in CURRENT_VERSION and int(raw.get("schema_version", 1)) == CURRENT_VERSION[etype]:
        return EVENT_TYPES[etype].model_validate(raw)
    return EVENT_ADAPTER.validate_python(upcast(raw))


def encode(event: Event) -> bytes:
    """The bytes stored in JetStream for an event."""
    return event.model_dump_json().encode()


def json_schemas() -> dict[str, dict[str, Any]]:
    """JSON Schema of every event type, keyed by type name (feeds AsyncAPI)."""
    return {name: cls.model_json_schema() for name, cls in EVENT_TYPES.items()}


__all__ = [
    "CATEGORIES",
    "CURRENT_VERSION",
    "EVENT_ADAPTER",
    "EVENT_TYPES",
    "LEVELS",
    "SHANGHAI",
    "TOKEN_PATTERN",
    "AnyEvent",
    "Category",
    "ContactMode",
    "Event",
    "Level",
    "Payload",
    "Place",
    "Severity",
    "Target",
    "UnknownEventType",
    "decode",
    "encode",
    "json_schemas",
    "now",
    "shanghai_day",
    "shanghai_day_key",
    "upcast",
    "uuid7",
]
