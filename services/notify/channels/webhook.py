"""Signed webhooks: HMAC-SHA256 over timestamp, nonce and body; replay-protected; rotating secrets.

Wire format (also in ``services/notify/README.md``)::

    POST <recipient url>
    Content-Type: application/json
    Gridwork-Delivery: n3f2…        notification id: the same on every retry (dedupe on it)
    Gridwork-Timestamp: 1744641900  unix seconds when this attempt was signed
    Gridwork-Nonce: 9b1c…           32 hex chars, new on every attempt
    Gridwork-Signature: v1=<hex>[,v1=<hex>]

    v1 = hex(HMAC-SHA256(secret, "<timestamp>.<nonce>." + raw body bytes))

During a secret rotation the sender signs with the new secret AND with the previous one until
the grace period ends, so the receiver may switch over at any moment within it.  A receiver
checks with :func:`verify_signature`: the timestamp must be within the tolerance (5 minutes),
one signature must match one of its secrets, and the nonce must not have been seen (a
:class:`ReplayGuard` remembers nonces for as long as their timestamp is acceptable).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import aiohttp

from shared.outbound import OutboundPolicy, TargetRefused, read_capped

from .base import TRANSPORT_ERRORS, Address, DeliveryError, Message, http_error, refused, transport_error

HDR_DELIVERY = "Gridwork-Delivery"
HDR_TIMESTAMP = "Gridwork-Timestamp"
HDR_NONCE = "Gridwork-Nonce"
HDR_SIGNATURE = "Gridwork-Signature"
DEFAULT_TOLERANCE_SECONDS = 300.0


class SignatureError(Exception):
    """A webhook request failed verification; the message says why (stale, replayed, mismatch…)."""


def signature(secret: str, timestamp: int, nonce: str, body: bytes) -> str:
    """The hex v1 signature of one request."""
    signed = f"{timestamp}.{nonce}.".encode() + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def sign(
    body: bytes, secrets_: Sequence[str], *, delivery_id: str, timestamp: int | None = None, nonce: str | None = None
) -> dict[str, str]:
    """Headers for one signed request: one ``v1=`` per secret (current first)."""
    if not secrets_:
        raise ValueError("no secret to sign with")
    ts = int(time.time()) if timestamp is None else timestamp
    nonce = nonce or secrets.token_hex(16)
    sigs = ",".join(f"v1={signature(s, ts, nonce, body)}" for s in secrets_)
    return {HDR_DELIVERY: delivery_id, HDR_TIMESTAMP: str(ts), HDR_NONCE: nonce, HDR_SIGNATURE: sigs}


@dataclass
class ReplayGuard:
    """Nonces seen within the tolerance window; a nonce seen twice is a replay.

    Entries expire with the window (an older request is refused for its timestamp anyway), so the
    memory needed is bounded by the request rate times the window.
    """

    tolerance: float = DEFAULT_TOLERANCE_SECONDS
    seen: dict[str, float] = field(default_factory=dict)
    _next_prune: float = 0.0

    def check_and_remember(self, nonce: str, timestamp: float, now: float) -> None:
        if now >= self._next_prune:
            self.seen = {n: exp for n, exp in self.seen.items() if exp > now}
            self._next_prune = now + min(self.tolerance, 30)
        expiry = self.seen.get(nonce)
        if expiry is not None and expiry > now:
            raise SignatureError("replayed request: nonce already seen")
        self.seen[nonce] = timestamp + self.tolerance


def _header(headers: Mapping[str, str], name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name.lower():
            return value
    raise SignatureError(f"missing header {name}")


def verify_signature(
    headers: Mapping[str, str],
    body: bytes,
    secrets_: Sequence[str],
    *,
    guard: ReplayGuard | None = None,
    tolerance: float = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> str:
    """Check a received webhook; returns its delivery id, raises :class:`SignatureError` if it is not good.

    ``secrets_``: the receiver's accepted secrets (current, and the previous one while rotating).
    ``guard``: pass the same :class:`ReplayGuard` for every request to refuse replays.
    """
    current = time.time() if now is None else now
    raw_ts = _header(headers, HDR_TIMESTAMP)
    try:
        ts = int(raw_ts)
    except ValueError as err:
        raise SignatureError("timestamp is not an integer") from err
    if abs(current - ts) > tolerance:
        raise SignatureError("timestamp outside the tolerance window")
    nonce = _header(headers, HDR_NONCE)
    if not (8 <= len(nonce) <= 128):
        raise SignatureError("nonce has a bad length")
    offered = [part.strip()[3:] for part in _header(headers, HDR_SIGNATURE).split(",") if part.strip()[:3] == "v1="]
    if not offered:
        raise SignatureError("no v1 signature")
    expected = [signature(s, ts, nonce, body) for s in secrets_ if s]
    if not any(hmac.compare_digest(o, e) for o in offered for e in expected):
        raise SignatureError("signature does not match")
    if guard is not None:
        guard.check_and_remember(nonce, ts, current)
    return _header(headers, HDR_DELIVERY)


class WebhookSender:
    """POSTs the notification as JSON, signed; any 2xx is a delivery."""

    name = "webhook"

    def __init__(self, client: aiohttp.ClientSession, policy: OutboundPolicy) -> None:
        self.client = client
        self.policy = policy

    async def send(self, message: Message, address: Address) -> None:
        if not address.webhook_url or not address.webhook_secrets:
            raise DeliveryError("webhook: recipient has no webhook configured", permanent=True, tried=False)
        body = json.dumps(message.payload(), ensure_ascii=False, separators=(",", ":")).encode()
        headers = sign(body, address.webhook_secrets, delivery_id=message.notification_id)
        headers["Content-Type"] = "application/json; charset=utf-8"
        try:
            self.policy.check_literal(address.webhook_url)
            async with self.client.post(
                address.webhook_url, data=body, headers=headers, allow_redirects=False
            ) as response:
                status = response.status
                await read_capped(response)  # drained (up to a cap), so the connection goes back to the pool
        except TargetRefused as err:
            raise refused("webhook", err) from None
        except TRANSPORT_ERRORS as err:
            raise transport_error("webhook", err) from None
        if not 200 <= status < 300:
            raise http_error("webhook", status)
