"""WeCom group robots (企业微信群机器人): the webhook Chinese offices read in their group chats.

Request: ``POST https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=<robot key>`` with JSON
``{"msgtype": "markdown", "markdown": {"content": "..."}}`` (at most 4096 bytes of content) or
``{"msgtype": "text", "text": {"content": "...", "mentioned_mobile_list": [...]}}`` (2048 bytes).
The robot answers HTTP 200 with ``{"errcode": 0, "errmsg": "ok"}``; a non-zero errcode is a
failure even with HTTP 200.  45009 (over 20 messages a minute) and -1 (system busy) are worth
retrying; the rest (93000 invalid key, 40008 bad message…) are not.

The URL embeds the robot key, so the whole URL is a secret: sealed at rest, masked in answers,
never in an error text.
"""

from __future__ import annotations

import json

import aiohttp

from shared.outbound import OutboundPolicy, TargetRefused, read_capped

from .base import TRANSPORT_ERRORS, Address, DeliveryError, Message, http_error, refused, transport_error

MARKDOWN_LIMIT = 4096
RETRYABLE_ERRCODES = {-1, 45009}


def truncate_utf8(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes, on a character boundary."""
    raw = text.encode()
    if len(raw) <= limit:
        return text
    return raw[: limit - 3].decode(errors="ignore") + "…"


def robot_body(message: Message) -> dict:
    """The robot's JSON for a message: markdown, which renders the title, colour and ack link."""
    return {"msgtype": "markdown", "markdown": {"content": truncate_utf8(message.markdown, MARKDOWN_LIMIT)}}


class WecomSender:
    name = "wecom"

    def __init__(self, client: aiohttp.ClientSession, policy: OutboundPolicy) -> None:
        self.client = client
        self.policy = policy

    async def send(self, message: Message, address: Address) -> None:
        if not address.wecom_url:
            raise DeliveryError("wecom: recipient has no robot configured", permanent=True, tried=False)
        body = json.dumps(robot_body(message), ensure_ascii=False).encode()
        try:
            self.policy.check_literal(address.wecom_url)
            async with self.client.post(
                address.wecom_url,
                data=body,
                headers={"Content-Type": "application/json; charset=utf-8"},
                allow_redirects=False,
            ) as response:
                status = response.status
                raw = await read_capped(response)
        except TargetRefused as err:
            raise refused("wecom", err) from None
        except TRANSPORT_ERRORS as err:
            raise transport_error("wecom", err) from None
        if status != 200:
            raise http_error("wecom", status)
        try:
            answer = json.loads(raw)
            errcode = int(answer.get("errcode", -1))
        except (ValueError, AttributeError, TypeError):
            raise DeliveryError("wecom: answer is not the robot's JSON") from None
        if errcode != 0:
            raise DeliveryError(f"wecom: errcode {errcode}", permanent=errcode not in RETRYABLE_ERRCODES)
