"""Signed acknowledgement links: ``/v1/ack/<community>.<notification id>.<expiry>.<signature>``.

The token names the notification and when the link stops working; the signature (HMAC-SHA256,
truncated to 128 bits, base64url) proves this service made it.  The link itself is the
credential, so a duty officer can acknowledge from the SMS on their phone without logging in.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from dataclasses import dataclass

_TOKEN = re.compile(r"^([A-Za-z0-9_-]{1,64})\.([A-Za-z0-9_-]{1,64})\.([0-9]{1,12})\.([A-Za-z0-9_-]{22})$")


class LinkError(ValueError):
    """The link is malformed, forged or expired."""


@dataclass(frozen=True)
class AckLink:
    community: str
    notification_id: str
    expires: int


def _mac(key: bytes, payload: str) -> str:
    digest = hmac.new(key, payload.encode(), hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def make_token(key: bytes, community: str, notification_id: str, expires: int) -> str:
    """The token of an acknowledgement link."""
    payload = f"{community}.{notification_id}.{expires}"
    return f"{payload}.{_mac(key, payload)}"


def read_token(key: bytes, token: str, *, now: float | None = None) -> AckLink:
    """Verify a token; raises :class:`LinkError` when it is malformed, forged or expired."""
    match = _TOKEN.match(token)
    if not match:
        raise LinkError("malformed acknowledgement link")
    community, notification_id, expires, mac = match.groups()
    if not hmac.compare_digest(mac, _mac(key, f"{community}.{notification_id}.{expires}")):
        raise LinkError("acknowledgement link signature does not match")
    if int(expires) < (time.time() if now is None else now):
        raise LinkError("acknowledgement link expired")
    return AckLink(community, notification_id, int(expires))
