"""The operations endpoints: ``/readyz`` says what is down without repeating what the failure said
(a database driver's message can carry host names, user names and SQL), ``/metrics`` is cheap
to scrape (the projections' lag is read at most every few seconds, not per scrape), and it can
move to an operations address of its own (``GRIDWORK_METRICS_ADDRESS``)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from shared.http_adapter import SideServer, split_address
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


class _StuckPool:
    """A pool whose every connection waits forever (a database that accepts and never answers)."""

    @contextlib.asynccontextmanager
    async def acquire(self, timeout: float | None = None) -> AsyncIterator[Any]:
        await asyncio.Event().wait()
        yield  # pragma: no cover


class _StuckRunner:
    """A projection whose status never comes (NATS away: a consumer-info request waits out its timeout)."""

    def __init__(self, name: str) -> None:
        self.projection = type("P", (), {"name": name})()

    async def status(self) -> dict[str, Any]:
        await asyncio.Event().wait()
        return {}  # pragma: no cover


async def _stuck(_runtime: Runtime[Any]) -> OutboxStatus:
    await asyncio.Event().wait()
    return OutboxStatus("stuck", 0)  # pragma: no cover


async def test_readyz_answers_within_a_second_whatever_hangs() -> None:
    spec: ServiceSpec[Any] = ServiceSpec(name="probe", title="Probe", description="a probe", outboxes=[_stuck])
    app = create_app(spec, Settings(jwt_secret="x" * 64))
    runtime = Runtime("probe", Settings(), _ConnectedNats(), _StuckPool(), store=None)  # type: ignore[arg-type]
    runtime.runners = {n: _StuckRunner(n) for n in ("a", "b", "c", "d")}  # type: ignore[misc]
    app.state.runtime = runtime
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://probe") as client:
        started = time.monotonic()
        r = await client.get("/readyz")
        took = time.monotonic() - started
    assert took < 1.2, took  # four projections and an outbox, each stuck: checked at once, each bounded
    body = r.json()
    assert r.status_code == 503 and body["postgres"] is False and body["postgres_error"] == "timeout"
    assert body["projections"] == [{"projection": n, "error": "timeout"} for n in ("a", "b", "c", "d")]
    assert body["outboxes"] == [{"outbox": "_stuck", "error": "timeout"}]


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


async def test_metrics_moved_to_the_operations_address_are_not_found_on_the_service_port() -> None:
    spec: ServiceSpec[Any] = ServiceSpec(name="probe", title="Probe", description="a probe")
    app = create_app(spec, Settings(jwt_secret="x" * 64, metrics_address="127.0.0.1:9464"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://probe") as client:
        r = await client.get("/metrics")
        assert r.status_code == 404 and "gridwork_" not in r.text and "process_" not in r.text
        assert (await client.get("/healthz")).status_code == 200
    # the operations app serves the exposition and nothing else
    ops = app.state.operations_app
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=ops), base_url="http://ops") as client:
        exposition = await client.get("/metrics")
        assert exposition.status_code == 200 and "python_info" in exposition.text
        assert (await client.get("/readyz")).status_code == 404


@pytest.mark.parametrize("address", ["9464", "127.0.0.1", "127.0.0.1:port", "http://127.0.0.1:9464"])
def test_an_operations_address_is_host_and_port(address: str) -> None:
    with pytest.raises(ValidationError):
        Settings(metrics_address=address)


def test_an_operations_address_may_be_ipv6_in_brackets() -> None:
    assert split_address(Settings(metrics_address="[::1]:9464").metrics_address or "") == ("::1", 9464)
    assert split_address("0.0.0.0:9464") == ("0.0.0.0", 9464)


async def test_a_side_server_serves_beside_the_main_one_and_an_address_in_use_is_named() -> None:
    async def hello(_request: Any) -> PlainTextResponse:
        return PlainTextResponse("ops")

    app = Starlette(routes=[Route("/metrics", hello)])
    server = SideServer(app, "127.0.0.1:0", "GRIDWORK_METRICS_ADDRESS")
    await server.start()
    try:
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"http://127.0.0.1:{server.port}/metrics")).text == "ops"
        taken = SideServer(app, f"127.0.0.1:{server.port}", "GRIDWORK_METRICS_ADDRESS")
        with pytest.raises(RuntimeError, match=f"GRIDWORK_METRICS_ADDRESS=127.0.0.1:{server.port}"):
            await taken.start()
    finally:
        await server.stop()
    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(f"http://127.0.0.1:{server.port}/metrics")


async def test_a_database_away_is_a_503_with_retry_after_whatever_the_driver_calls_it() -> None:
    """#15 item 17: the socket gone, the server not accepting connections yet or shutting down, too
    many connections, the driver's connection closed, a pool acquire timing out."""
    import asyncpg
    from fastapi import APIRouter

    errors: dict[str, Exception] = {
        "gone": asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        "starting": asyncpg.CannotConnectNowError("the database system is starting up"),
        "shutdown": asyncpg.AdminShutdownError("terminating connection due to administrator command"),
        "crash": asyncpg.CrashShutdownError("terminating connection because of crash of another server process"),
        "full": asyncpg.TooManyConnectionsError("sorry, too many clients already"),
        "closed": asyncpg.InterfaceError("cannot call Connection.fetch(): connection is closed"),
        "acquire": TimeoutError(),
        "reset": ConnectionResetError(LEAK),
    }
    router = APIRouter()

    @router.get("/fail/{what}")
    async def fail(what: str) -> None:
        raise errors[what]

    spec: ServiceSpec[Any] = ServiceSpec(name="probe", title="Probe", description="a probe", routers=[router])
    app = create_app(spec, Settings(jwt_secret="x" * 64))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://probe") as client:
        for what in errors:
            r = await client.get(f"/fail/{what}")
            assert r.status_code == 503 and r.headers["Retry-After"] == "1", (what, r.text)
            assert r.json()["error"]["code"] == "unavailable" and LEAK not in r.text
