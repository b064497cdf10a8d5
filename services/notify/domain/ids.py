"""Deterministic ids: however often a source event is folded, its notifications and watches exist once."""

from __future__ import annotations

import hashlib
import uuid


def _digest(*parts: object) -> str:
    return hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()[:32]


def notification_id(source_id: str, recipient_id: str, channel: str) -> str:
    """The id of (source event, recipient, channel): the same fold always yields the same notification."""
    return f"n{_digest(source_id, recipient_id, channel)}"


def ack_id(source_id: str, recipient_id: str) -> str:
    """The id of the acknowledgement watch of (source event, recipient)."""
    return f"a{_digest(source_id, recipient_id)}"


def as_uuid(value: object) -> uuid.UUID | None:
    """``value`` as a UUID (an event id kept as text), or None (a digest id is not one)."""
    try:
        return uuid.UUID(str(value))
    except (ValueError, TypeError):
        return None
