"""Channel secrets sealed at rest, and opened only for the length of one send.

Webhook HMAC keys and WeCom robot URLs (the URL carries the robot's key) are sealed with
AES-256-GCM, bound to their directory row (community and recipient id as associated data), so a
sealed blob copied onto another row does not open.  The delivery worker opens it per send
(:func:`address_of`); the directory handlers open it to change an entry.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.events import now

from .channels import Address
from .domain.directory import signing_secrets


class Sealer:
    """AES-GCM sealing of a small JSON document, bound to the row it belongs to."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def seal(self, secrets: dict[str, Any], bound_to: str) -> bytes:
        """``secrets`` encrypted under a fresh nonce (nonce first), bound to ``bound_to``."""
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, json.dumps(secrets).encode(), bound_to.encode())

    def open(self, blob: bytes | None, bound_to: str) -> dict[str, Any]:
        """The secrets sealed in ``blob`` (none when there is no blob); fails if bound elsewhere."""
        if not blob:
            return {}
        secrets: dict[str, Any] = json.loads(self._aead.decrypt(blob[:12], blob[12:], bound_to.encode()))
        return secrets


def bound_to(community: str, recipient_id: str) -> str:
    """The associated data binding a sealed blob to its directory row."""
    return f"notify-recipient:{community}/{recipient_id}"


def address_of(
    sealer: Sealer,
    community: str,
    recipient_id: str,
    channels_json: str,
    sealed: bytes | None,
    at: datetime | None = None,
) -> Address:
    """Where to reach a recipient right now: unsealed secrets, the previous webhook key while in grace."""
    channels = json.loads(channels_json)
    secrets = sealer.open(sealed, bound_to(community, recipient_id))
    return Address(
        webhook_url=(channels.get("webhook") or {}).get("url"),
        webhook_secrets=signing_secrets(secrets, at or now()),
        wecom_url=secrets.get("wecom_url"),
        email=(channels.get("email") or {}).get("address"),
        sms_number=(channels.get("sms") or {}).get("number"),
    )
