"""Fixtures of the notify tests: a real local HTTP receiver, a real local SMTP server, settings."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from aiosmtpd.controller import Controller

from services.cli.embedded import free_port
from services.notify.receiver import LocalReceiver
from services.notify.settings import NotifySettings
from shared.eventstore import EventStore, connect
from shared.settings import Settings

from .scenario import SMS_TOKEN, WEBHOOK_SECRETS, WECOM_KEYS, Inbox


@pytest.fixture
async def receiver() -> AsyncIterator[LocalReceiver]:
    """Webhooks, WeCom robots and the SMS gateway of the community's agencies, on 127.0.0.1."""
    r = LocalReceiver(
        webhook_secrets={name: [secret] for name, secret in WEBHOOK_SECRETS.items()},
        wecom_keys=set(WECOM_KEYS.values()),
        sms_token=SMS_TOKEN,
    )
    await r.start()
    yield r
    await r.stop()


@pytest.fixture
async def feed(settings: Settings) -> AsyncIterator[EventStore]:
    """The test's own connection to the event store: it plays the issues and scoring services,
    whose events the notify service may read but not write."""
    nc = await connect(settings, "tests-notify-feed")
    yield EventStore(nc, settings)
    await nc.close()


@pytest.fixture
def smtp() -> Iterator[Inbox]:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 collecting every message."""
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    inbox.port = controller.port
    yield inbox
    controller.stop()


def notify_settings_for(
    settings: Settings, receiver: LocalReceiver, smtp: Inbox, **overrides: object
) -> NotifySettings:
    """Notify settings on the test's stack, pointing at the local receiver and SMTP server, fast timers."""
    values: dict[str, object] = {
        **settings.model_dump(),
        "notify_smtp_port": smtp.port,
        "notify_sms_gateway_url": f"{receiver.url}/sms",
        "notify_sms_gateway_token": SMS_TOKEN,
        "notify_public_url": "http://notify.bairuijing.test",
        "notify_poll_seconds": 0.2,
        "notify_timer_seconds": 0.1,
        "notify_burst_attempts": 2,
        "notify_burst_wait_initial": 0.01,
        "notify_burst_wait_max": 0.05,
        "notify_backoff_initial_seconds": 0.2,
        "notify_backoff_max_seconds": 0.8,
    }
    values.update(overrides)
    return NotifySettings(**values)  # type: ignore[arg-type]


@pytest.fixture
def notify_settings(settings: Settings, receiver: LocalReceiver, smtp: Inbox) -> NotifySettings:
    return notify_settings_for(settings, receiver, smtp)
