"""What every delivery channel shares: the message, the address, the sender protocol and how
errors are classified and redacted."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp

from shared.outbound import TargetRefused


@dataclass(frozen=True)
class Message:
    """One rendered notification, the same for every channel it goes out on."""

    notification_id: str
    community: str
    subject_ref: str
    kind: str  # escalation | overdue | digest | test
    title: str
    text: str
    markdown: str
    short: str  # for SMS
    urgent: bool
    ack_url: str | None = None
    facts: dict[str, Any] = field(default_factory=dict)

    def payload(self) -> dict[str, Any]:
        """The JSON body of a webhook: the rendered text plus the structured facts."""
        return {
            "notification_id": self.notification_id,
            "community": self.community,
            "kind": self.kind,
            "subject_ref": self.subject_ref,
            "urgent": self.urgent,
            "title": self.title,
            "text": self.text,
            "ack_url": self.ack_url,
            "facts": self.facts,
        }


@dataclass(frozen=True)
class Address:
    """Where one recipient is reached, with its secrets unsealed for the length of one send."""

    webhook_url: str | None = None
    webhook_secrets: tuple[str, ...] = ()  # current first, then the previous one during its grace period
    wecom_url: str | None = None
    email: str | None = None
    sms_number: str | None = None

    def secrets(self) -> list[str]:
        """Every secret in here, for redacting error texts."""
        out = list(self.webhook_secrets)
        if self.wecom_url:
            out.append(self.wecom_url)
            if "key=" in self.wecom_url:
                out.append(self.wecom_url.split("key=", 1)[1].split("&", 1)[0])
        return [s for s in out if s]

    def __repr__(self) -> str:  # never print secrets, even in a traceback
        return "Address(<redacted>)"


class DeliveryError(Exception):
    """A send did not go through.  ``permanent``: retrying will not help.  ``tried``: the channel was called."""

    def __init__(self, message: str, *, permanent: bool = False, tried: bool = True) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.tried = tried


class Sender(Protocol):
    name: str

    async def send(self, message: Message, address: Address) -> None:
        """Deliver ``message``; return on confirmation, raise :class:`DeliveryError` otherwise."""
        ...


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret replaced (defence in depth: errors are built without them anyway)."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "<redacted>")
    return text


def http_error(channel: str, status: int) -> DeliveryError:
    """Classify an HTTP answer: 4xx is permanent except timeouts and rate limits."""
    retryable = status >= 500 or status in (408, 425, 429)
    return DeliveryError(f"{channel}: HTTP {status}", permanent=not retryable)


def transport_error(channel: str, err: BaseException) -> DeliveryError:
    """A connection-level failure (refused, reset, timed out): always retryable.

    Only the error's class is kept: aiohttp's messages can quote the URL, and a WeCom robot's URL
    carries its key.
    """
    return DeliveryError(f"{channel}: {type(err).__name__}")


def refused(channel: str, err: TargetRefused) -> DeliveryError:
    """A target the outbound policy does not admit (:mod:`shared.outbound`): never called, so ``tried``
    is False; permanent unless its host merely did not resolve."""
    return DeliveryError(f"{channel}: target refused ({err.reason})", permanent=err.permanent, tried=False)


#: What a failed HTTP exchange raises (connection refused, reset, timed out, bad answer).
TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (aiohttp.ClientError, TimeoutError)
