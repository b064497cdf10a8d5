"""Delivery channels: signed webhooks, WeCom group robots, email over SMTP, an SMS gateway over HTTP.

Every channel has one coroutine, ``send(message, address)``, which returns when the channel
confirmed the message and raises :class:`DeliveryError` otherwise.  A permanent error (the
recipient's robot key was revoked, the mail server refused the address) goes straight to the
dead-letter state; anything else is retried with backoff.  Error texts are built here, never
copied from a URL, so no secret can leak into logs or events.
"""

from __future__ import annotations

import aiohttp

from ..settings import NotifySettings
from .base import (
    TRANSPORT_ERRORS,
    Address,
    DeliveryError,
    Message,
    Sender,
    http_error,
    redact,
    refused,
    transport_error,
)
from .email import EmailSender
from .sms import SmsSender
from .webhook import WebhookSender
from .wecom import WecomSender

__all__ = [
    "TRANSPORT_ERRORS",
    "Address",
    "DeliveryError",
    "Message",
    "Sender",
    "build_senders",
    "http_error",
    "redact",
    "refused",
    "transport_error",
]


def build_senders(settings: NotifySettings, client: aiohttp.ClientSession) -> dict[str, Sender]:
    """One sender per channel, sharing one pooled HTTP client session (whose connector should be
    :func:`shared.outbound.guarded_connector`'s: the senders check literal addresses themselves)."""
    policy = settings.outbound_policy()
    senders: list[Sender] = [
        WebhookSender(client, policy),
        WecomSender(client, policy),
        EmailSender(settings),
        SmsSender(client, settings, policy),
    ]
    return {s.name: s for s in senders}
