"""SMS through an HTTP gateway (the operator's or an aggregator's), one JSON POST per message.

Request (``GRIDWORK_NOTIFY_SMS_GATEWAY_URL``)::

    POST <gateway url>
    Authorization: Bearer <GRIDWORK_NOTIFY_SMS_GATEWAY_TOKEN>
    Content-Type: application/json
    {"id": "<notification id>", "to": "+8613800000000", "text": "...", "community": "bairuijing"}

Any 2xx means the gateway accepted the message; ``id`` is stable across retries so the gateway
can drop a repeat.  4xx (except 408/429) is permanent, everything else is retried.
"""

from __future__ import annotations

import json

import aiohttp

from shared.outbound import OutboundPolicy, TargetRefused, read_capped

from ..settings import NotifySettings
from .base import TRANSPORT_ERRORS, Address, DeliveryError, Message, http_error, refused, transport_error

SMS_LIMIT = 500


class SmsSender:
    name = "sms"

    def __init__(self, client: aiohttp.ClientSession, settings: NotifySettings, policy: OutboundPolicy) -> None:
        self.client = client
        self.policy = policy
        self.url = settings.notify_sms_gateway_url
        self.token = settings.notify_sms_gateway_token

    async def send(self, message: Message, address: Address) -> None:
        if not self.url:
            raise DeliveryError(
                "sms: no gateway configured (GRIDWORK_NOTIFY_SMS_GATEWAY_URL)", permanent=True, tried=False
            )
        if not address.sms_number:
            raise DeliveryError("sms: recipient has no number", permanent=True, tried=False)
        body = {
            "id": message.notification_id,
            "to": address.sms_number,
            "text": message.short[:SMS_LIMIT],
            "community": message.community,
        }
        headers = {"Content-Type": "application/json; charset=utf-8"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            self.policy.check_literal(self.url)
            async with self.client.post(
                self.url, data=json.dumps(body, ensure_ascii=False).encode(), headers=headers, allow_redirects=False
            ) as response:
                status = response.status
                await read_capped(response)
        except TargetRefused as err:
            raise refused("sms", err) from None
        except TRANSPORT_ERRORS as err:
            raise transport_error("sms", err) from None
        if not 200 <= status < 300:
            raise http_error("sms", status)
