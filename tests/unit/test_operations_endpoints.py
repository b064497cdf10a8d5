"""The operations endpoints: ``/readyz`` says what is down without repeating what the failure said
(a database driver's message can carry host names, user names and SQL), and ``/metrics`` is cheap
to scrape (the projections' lag is read at most every few seconds, not per scrape)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx

from shared.service import OutboxStatus, Runtime, ServiceSpec, create_app
from shared.settings import Settings

LEAK = 'password authentication failed for user "gridwork_visits" at db.internal:5432'


class _BrokenPool:
    """A pool whose database refuses every connection, with a talkative message."""

    @contextlib.asynccontextmanager
    async def acquire(self, timeout: float | None = None) -> AsyncIterator[Any]:
        raise ConnectionError(LEAK)
        yield  # pragma: no cover


class _ConnectedNats:
    is_connected = True


async def _owed(_runtime: Runtime[Any]) -> OutboxStatus:
    raise RuntimeError(LEAK)


async def test_readyz_names_what_is_down_but_not_the_drivers_words() -> None:
    spec: ServiceSpec[Any] = ServiceSpec(name="probe", title="Probe", description="a probe", outboxes=[_owed])
    app = create_app(spec, Settings(jwt_secret="x" * 64))
    app.state.runtime = Runtime("probe", Settings(), _ConnectedNats(), _BrokenPool(), store=None)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://probe") as client:
        r = await client.get("/readyz")
    assert r.status_code == 503
    body = r.json()
    assert body["postgres"] is False and body["postgres_error"] == "ConnectionError"
    assert body["outboxes"] == [{"outbox": "_owed", "error": "RuntimeError"}]
    assert "gridwork_visits" not in r.text and "db.internal" not in r.text


class _CountingRunner:
    """A projection runner that counts how often its lag is read (a query and a round trip each)."""

    def __init__(self) -> None:
        self.reads = 0

    async def status(self) -> dict[str, Any]:
        self.reads += 1
        return {"projection": "visits_directory", "lag_events": 0}


async def test_metrics_scrapes_do_not_each_cost_a_database_query() -> None:
    spec: ServiceSpec[Any] = ServiceSpec(name="probe", title="Probe", description="a probe")
    app = create_app(spec, Settings(jwt_secret="x" * 64))
    runner = _CountingRunner()
    runtime = Runtime("probe", Settings(), _ConnectedNats(), _BrokenPool(), store=None)  # type: ignore[arg-type]
    runtime.runners["visits_directory"] = runner  # type: ignore[assignment]
    app.state.runtime = runtime
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://probe") as client:
        for _ in range(20):
            assert (await client.get("/metrics")).status_code == 200
    assert runner.reads == 1  # twenty scrapes in a moment: the lag was read once
