"""Fixtures of the console's integration tests: the console app on the test's servers, and accounts."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from services.console.accounts import AccountsDeps, open_account
from services.console.app import build_app
from services.console.domain.accounts import LockPolicy
from services.console.passwords import Passwords
from services.console.settings import ConsoleSettings
from shared.events.console import ACCOUNTS_COMMUNITY, Scope
from shared.eventstore import EventStore, connect
from shared.settings import Settings
from tests.harness import running


@pytest.fixture
def console_settings(settings: Settings) -> ConsoleSettings:
    return ConsoleSettings(**settings.model_dump())


@pytest.fixture
async def console(console_settings: ConsoleSettings) -> AsyncIterator[httpx.AsyncClient]:
    async with running(build_app(console_settings)) as client:
        yield client


@pytest.fixture
async def open_accounts(console_settings: ConsoleSettings) -> AsyncIterator[Any]:
    """``await open_accounts(username, password, role=…, **scope)``: an account opened as the command line does."""
    nc = await connect(console_settings, "tests-accounts")
    deps = AccountsDeps(EventStore(nc, console_settings), Passwords(console_settings.sealing_key()), LockPolicy())

    async def add(username: str, password: str, *, role: str, name: str | None = None, **scope: Any) -> None:
        await open_account(username, name or username, Scope(role=role, **scope), password, by=None, deps=deps)

    try:
        yield add
    finally:
        await nc.close()


def csrf_of(html: str) -> str:
    """The CSRF token of the first form on a page."""
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


async def sign_in(client: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    """Fill in the sign-in form as a browser does (its CSRF token comes with the form)."""
    form = await client.get("/login")
    return await client.post(
        "/login", data={"username": username, "password": password, "csrf": csrf_of(form.text), "next": "/"}
    )


async def account_events(settings: Settings, username: str) -> list[str]:
    """The types of an account's events, oldest first (read from the stream as the admin)."""
    nc = await connect(settings, "tests-read")
    try:
        stored = await EventStore(nc, settings).read(
            f"{settings.namespace}.{ACCOUNTS_COMMUNITY}.console.account.{username}.*"
        )
        return [s.type for s in stored]
    finally:
        await nc.close()
