"""Helpers the tests share: polling with a deadline, in-process service clients, tokens."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import httpx
from fastapi import FastAPI

from shared.auth import mint_token
from shared.settings import Settings

T = TypeVar("T")


async def eventually(
    check: Callable[[], Awaitable[T]], *, timeout: float = 20.0, interval: float = 0.05, what: str = "condition"
) -> T:
    """Poll ``check`` until it returns a truthy value (returned) or ``timeout`` passes (AssertionError)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = await check()
            if last:
                return last
        except AssertionError as err:
            last = err
        await asyncio.sleep(interval)
    raise AssertionError(f"{what} not reached within {timeout}s; last: {last!r}")


@contextlib.asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Run ``app`` with its lifespan (real NATS and PostgreSQL) and yield an HTTP client on it."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver", timeout=30) as client:
            yield client


def auth(settings: Settings, role: str, **scope: Any) -> dict[str, str]:
    """Authorization header for a token of ``role`` with the given scope claims."""
    return {"Authorization": f"Bearer {mint_token(settings, role=role, **scope)}"}


def nats_env(settings: Settings, user: str) -> dict[str, str]:
    """Environment for a child process to log in to NATS as ``user`` (its own service user).

    Empty on a server without users; there ``GRIDWORK_NATS_URL`` alone is enough.
    """
    password = settings.nats_passwords.get(user)
    if password is None:
        return {}
    return {"GRIDWORK_NATS_USER": user, "GRIDWORK_NATS_PASSWORD": password}
