"""What every gridwork service shares: its runtime (connections), its HTTP app and how it is served.

A service describes itself with a :class:`ServiceSpec` (routers, projections, background tasks,
the events it publishes and consumes) and gets back a FastAPI app whose lifespan owns every
connection: NATS, the PostgreSQL pool, the event store, the projection runners.  The app has
``/healthz``, ``/readyz``, ``/metrics``, OpenAPI at ``/docs`` and AsyncAPI at ``/asyncapi``;
with ``GRIDWORK_METRICS_ADDRESS`` set, ``/metrics`` is served on that operations address instead,
by a second HTTP server in the same process.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import gc
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import asyncpg
import nats.errors
import structlog
from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from nats.aio.client import Client as NATS
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.types import ASGIApp

from .auth import check_caller, check_signing_secret
from .db import create_pool, migrate
from .errors import DomainError
from .events import Event
from .eventstore import ADMIN_USER, AppendError, ConcurrencyError, EventStore, connect, nats_credentials
from .http_adapter import BodyLimit, SideServer, add_ingress, instrument
from .logs import configure_logging
from .nats import patches
from .nats.broker_metrics import BrokerMetrics
from .openapi import declare_responses
from .projection import Projection, ProjectionRunner
from .settings import Settings

log = structlog.get_logger("gridwork.service")


#: A service's own typed dependency object (settings, loaded rules, repositories…), built by its
#: composition root from the live connections.
DepsT = TypeVar("DepsT")
T = TypeVar("T")


@dataclass
class Runtime(Generic[DepsT]):
    """Live connections of one service process, built by the lifespan and passed down, plus the
    service's typed dependency object (:attr:`deps`) its composition root built on them."""

    name: str
    settings: Settings
    nc: NATS
    pool: asyncpg.Pool
    store: EventStore
    runners: dict[str, ProjectionRunner] = field(default_factory=dict)
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    wired: DepsT | None = None

    @property
    def deps(self) -> DepsT:
        """The service's dependency object (:attr:`ServiceSpec.wire` built it at start-up)."""
        if self.wired is None:
            raise RuntimeError(f"{self.name}: the service's dependencies are not wired (ServiceSpec.wire)")
        return self.wired

    async def close(self, grace: float = 10) -> None:
        """Stop the runners and background tasks, then the connections — within ``grace`` seconds
        each: a task that will not stop, or a connection still held by one, must not hold up the
        process's exit (a hung shutdown is an outage of its own)."""
        for runner in self.runners.values():
            runner.stop()
        for task in self.tasks:
            task.cancel()
        if self.tasks:
            done, stuck = await asyncio.wait(self.tasks, timeout=grace)
            for task in done:  # retrieve how each ended (a crash was logged by its guard already)
                if not task.cancelled():
                    task.exception()
            if stuck:
                log.warning("tasks_not_stopped", service=self.name, tasks=sorted(t.get_name() for t in stuck))
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.nc.drain(), grace)
        try:
            await asyncio.wait_for(self.pool.close(), grace)
        except TimeoutError:
            log.warning("database_pool_terminated", service=self.name, reason="a connection was still held")
            self.pool.terminate()


Background = Callable[[Runtime[Any]], Awaitable[None]]


@dataclass(frozen=True)
class OutboxStatus:
    """What one outbox holds: ``pending`` is owed now — being sent, due, or due within
    :data:`DUE_SOON_SECONDS` (a short retry backoff) — ``scheduled`` waits for a later time (a long
    backoff, a deferred digest), ``held`` cannot go anywhere yet (no destination configured),
    ``dead`` was given up on."""

    outbox: str
    pending: int
    scheduled: int = 0
    held: int = 0
    dead: int = 0


#: How often a scrape of /metrics may refresh the projections' lag gauges (a query and a round trip each).
LAG_REFRESH_SECONDS = 5.0

#: How long one /readyz check (PostgreSQL, a projection's status, an outbox) may take; they run at
#: once, so /readyz answers within about this long whatever is down (Docker's healthcheck: 30 s).
READYZ_CHECK_SECONDS = 0.8


async def _bounded(check: Awaitable[T]) -> T | str:
    """``check``'s result, or the kind of its failure: ``"timeout"`` past :data:`READYZ_CHECK_SECONDS`,
    else the exception's class name (never its message: a driver's can carry hosts, users and SQL)."""
    try:
        return await asyncio.wait_for(check, READYZ_CHECK_SECONDS)
    except TimeoutError:
        return "timeout"
    except Exception as err:
        return type(err).__name__


#: What a write meets when NATS or PostgreSQL is away for a moment: answered 503 with Retry-After
#: (nothing half-written; the client sends the request again).  From PostgreSQL: a connection that
#: failed or went away (08xxx), the server shutting down, restarting or not accepting connections
#: yet (57P01–57P03), too many connections (53300), the driver's connection closed under it
#: (InterfaceError) and a pool acquire that timed out (TimeoutError).
UNAVAILABLE: tuple[type[Exception], ...] = (
    AppendError,
    nats.errors.Error,
    TimeoutError,
    ConnectionError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.InterfaceError,
)


#: A row due within this many seconds counts as owed now (``pending``), not ``scheduled``.
DUE_SOON_SECONDS = 60

#: Reads one outbox's status; a service lists its probes in :attr:`ServiceSpec.outboxes`.
OutboxProbe = Callable[[Runtime[Any]], Awaitable[OutboxStatus]]


@dataclass
class ServiceSpec(Generic[DepsT]):
    """Everything that makes one service what it is."""

    name: str
    title: str
    description: str
    routers: Sequence[APIRouter] = ()
    projections: Sequence[Projection] = ()
    background: Sequence[Background] = ()
    on_start: Sequence[Background] = ()
    publishes: Sequence[type[Event]] = ()
    consumes: Sequence[type[Event]] = ()
    port_setting: str = ""
    settings_type: type[Settings] = Settings
    #: ASGI middleware run inside the HTTP metrics (so they count what it answers), outermost first.
    middleware: Sequence[Callable[[ASGIApp], ASGIApp]] = ()
    #: ASGI middleware in front of the whole app — before Starlette's error handling and the HTTP
    #: metrics — for a hot route's fast path.  It must count what it answers itself
    #: (:func:`shared.http_adapter.http_metrics`) and render errors with the app's exception handlers.
    ingress: Sequence[Callable[[ASGIApp], ASGIApp]] = ()
    #: What the service still owes the outside world, shown by ``/readyz`` (a client that must see
    #: every delivery made, like the demo, waits for these to reach zero as well as the lag).
    outboxes: Sequence[OutboxProbe] = ()
    #: The composition root: builds the service's typed dependency object on the live connections,
    #: before ``on_start`` hooks, projections and background tasks run (they read ``runtime.deps``).
    wire: Callable[[Runtime[Any]], Awaitable[DepsT]] | None = None
    #: The service's own SQL migrations (``services/<name>/migrations``), applied after shared/'s at start-up.
    migrations: Sequence[Path] = ()
    #: The community → street lookup on the service's own projection, for street admins' scope
    #: (:func:`shared.auth.require`); a service without one refuses street admins on community routes.
    street_of: Callable[[DepsT, str], Awaitable[str | None]] | None = None
    #: Routes taking a body above ``max_body_bytes``: (path suffix, settings field with its limit).
    body_limits: Sequence[tuple[str, str]] = ()
    #: Checks of the settings run before anything connects; one raising RuntimeError refuses the
    #: start (a secret the service cannot run without, like the JWT secret's check).
    checks: Sequence[Callable[[Settings], None]] = ()
    #: Called with the built app, last: what a service adds besides routers (static files, the
    #: exception handlers of an HTML front).
    configure: Callable[[FastAPI], None] | None = None


async def open_runtime(
    name: str, settings: Settings, projections: Sequence[Projection] = (), migrations: Sequence[Path] = ()
) -> Runtime[Any]:
    """Connect to NATS and PostgreSQL, make sure streams and tables exist, set up projections.

    NATS: as the service's own user (``visits`` for ``visits`` and ``visits-import``) when the
    settings know every user's password (embedded stack, tests), else as ``settings.nats_user``.
    PostgreSQL: as the service's own role, in its own schema (:func:`shared.db.create_pool`); the
    migrations and the projections' schemas it makes belong to that role.
    """
    patches.install()
    context = name.split("-", 1)[0]
    user = context if context in settings.nats_passwords else None
    nc = await connect(settings, f"gridwork-{name}", user=user)
    pool = await create_pool(settings, service=context)
    broker_metrics = BrokerMetrics(context)  # FastStream's broker metrics, app_name = the service
    store = EventStore(nc, settings, broker_metrics)
    # On a server with users the admin made the streams; a service user only looks them up.
    credentials = nats_credentials(settings, user)
    await store.ensure_streams(manage=credentials is None or credentials[0] == ADMIN_USER)
    async with pool.acquire() as conn:
        await migrate(conn, migrations)
    runtime: Runtime[Any] = Runtime(name, settings, nc, pool, store)
    for projection in projections:
        runner = ProjectionRunner(projection, nc=nc, pool=pool, settings=settings, broker_metrics=broker_metrics)
        await runner.setup()
        runtime.runners[projection.name] = runner
    return runtime


def _folding(runner: ProjectionRunner) -> Background:
    """The background task that runs one projection runner."""

    async def fold(_runtime: Runtime[Any]) -> None:
        await runner.run()

    return fold


def _guard(name: str, coro_fn: Background, runtime: Runtime[Any]) -> asyncio.Task[Any]:
    """Run a background task; if it crashes, log and restart it after a pause (never die silently)."""

    async def loop() -> None:
        while True:
            try:
                await coro_fn(runtime)
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("background_task_crashed", task=name)
                await asyncio.sleep(2)

    return asyncio.create_task(loop(), name=name)


def runtime_of(request: Request) -> Runtime[Any]:
    """The running service's :class:`Runtime` (a route's way to its connections and ``deps``)."""
    runtime: Runtime[Any] | None = getattr(request.app.state, "runtime", None)
    if runtime is None:
        raise RuntimeError("the service is not started (its lifespan has not run)")
    return runtime


def asyncapi_document(spec: ServiceSpec[Any], settings: Settings) -> dict[str, Any]:
    """AsyncAPI 3.0 for the service, generated by FastStream from the event models.

    The broker here only describes channels; it never connects.  Messages flow through the
    event store and the projection runner, which need control over acks and transactions that a
    generic subscriber does not give.
    """
    from faststream.nats import NatsBroker
    from faststream.specification import AsyncAPI

    broker = NatsBroker(settings.nats_url or "nats://127.0.0.1:4222")
    ns = settings.namespace
    for cls in spec.publishes:
        broker.publisher(
            f"{ns}.{{community}}.{cls.context}.{cls.aggregate_kind}.{{aggregate_id}}.{cls.__name__}",
            schema=cls,
            title=f"{cls.__name__}",
            description=(cls.__doc__ or "").strip(),
        )
    for cls in spec.consumes:

        def _doc(event: Any) -> None:  # describes the consumed payload; never called
            return None

        _doc.__annotations__ = {"event": cls, "return": None}
        broker.subscriber(
            f"{ns}.*.{cls.context}.{cls.aggregate_kind}.*.{cls.__name__}",
            title=f"{spec.name}:{cls.__name__}",
            description=(cls.__doc__ or "").strip(),
        )(_doc)
    doc = AsyncAPI(broker, title=f"gridwork {spec.name}", version="0.1.0", description=spec.description)
    document: dict[str, Any] = doc.to_specification().to_jsonable()
    return document


def _quiet_gc() -> None:
    """Keep the cyclic GC's pauses out of request latency.

    After start-up a service holds ~10^6 long-lived objects (FastAPI's and pydantic's schemas,
    modules, the runtime).  Left to itself, the GC's full collections walk them all again — 80 ms
    pauses in the visits service under load, each one a request's p99.  Frozen, they are never
    scanned again; a larger first generation makes the young collections rarer (most garbage of
    a request is freed by reference counting and never reaches the collector anyway).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 20, 100)


def _field_error(error: Mapping[str, Any]) -> dict[str, str]:
    """One validation error as ``{field, message}``: a JSON syntax error names the body, not the
    character offset FastAPI puts in its location."""
    if error.get("type") == "json_invalid":
        where = next((p for p in error.get("loc", ()) if isinstance(p, int)), None)
        at = f" at character {where}" if where is not None else ""
        return {"field": "body", "message": f"the body is not valid JSON{at}: {error.get('msg', '')}".rstrip(": ")}
    field = ".".join(str(p) for p in error["loc"] if p != "body")
    return {"field": field or "body", "message": error["msg"]}  # the body as a whole (a form, plain text)


def create_app(spec: ServiceSpec[Any], settings: Settings | None = None, *, quiet_gc: bool = False) -> FastAPI:
    """The FastAPI app of a service; its lifespan owns every connection.  ``quiet_gc``: a service
    process of its own (:func:`serve`) freezes what start-up built, out of the GC's reach."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        s = settings or spec.settings_type()
        configure_logging(s, spec.name)
        check_signing_secret(s)
        for check in spec.checks:
            check(s)
        app.state.settings = s
        runtime = await open_runtime(spec.name, s, spec.projections, spec.migrations)
        app.state.runtime = runtime
        if spec.wire is not None:
            runtime.wired = await spec.wire(runtime)
        if spec.street_of is not None:
            app.state.street_of = functools.partial(spec.street_of, runtime.deps)
        for hook in spec.on_start:
            await hook(runtime)
        for name, runner in runtime.runners.items():
            runtime.tasks.append(_guard(f"projection:{name}", _folding(runner), runtime))
        for task_fn in spec.background:
            runtime.tasks.append(_guard(getattr(task_fn, "__name__", "task"), task_fn, runtime))
        operations: SideServer | None = None
        if s.metrics_address:
            # /metrics on its own address (Prometheus only), the service's port answers 404 there
            operations = SideServer(app.state.operations_app, s.metrics_address, "GRIDWORK_METRICS_ADDRESS")
            try:
                await operations.start()
            except BaseException:
                await runtime.close()
                raise
        log.info("service_started", projections=list(runtime.runners), metrics_address=s.metrics_address)
        if quiet_gc:
            _quiet_gc()
        try:
            yield
        finally:
            if operations is not None:
                await operations.stop()
            await runtime.close()
            log.info("service_stopped")

    app = FastAPI(
        title=f"gridwork {spec.name}",
        description=spec.description,
        version="0.1.0",
        lifespan=lifespan,
        # Metrics are Prometheus's (below); FastAPI's OpenTelemetry hooks would only cost each request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    if settings is not None:
        app.state.settings = settings
    for middleware in reversed(spec.middleware):
        app.add_middleware(middleware)
    instrument(app)
    # The body limit runs first of all, in front of the service's own ingress (the visits fast path).
    larger = spec.body_limits

    def limited(inner: ASGIApp) -> ASGIApp:
        return BodyLimit(inner, larger)

    add_ingress(app, [limited, *spec.ingress])

    @app.exception_handler(DomainError)
    async def _domain_error(_request: Request, err: DomainError) -> JSONResponse:
        return JSONResponse(err.body(), status_code=err.status)

    @app.exception_handler(ConcurrencyError)
    async def _conflict(_request: Request, err: ConcurrencyError) -> JSONResponse:
        return JSONResponse(
            {
                "error": {
                    "code": "version_conflict",
                    "message": str(err),
                    "expected_version": err.expected,
                    "current_version": err.actual,
                }
            },
            status_code=409,
        )

    async def _unavailable(_request: Request, err: Exception) -> JSONResponse:
        # The broker or the database did not take the write (a NATS leader election, a restart):
        # nothing was half-written, and every write is idempotent, so the client sends it again.
        log.warning("dependency_unavailable", error=repr(err))
        return JSONResponse(
            {
                "error": {
                    "code": "unavailable",
                    "message": "the event store or database is unavailable for a moment; send the request again",
                }
            },
            status_code=503,
            headers={"Retry-After": "1"},
        )

    for unavailable in UNAVAILABLE:
        app.add_exception_handler(unavailable, _unavailable)

    @app.exception_handler(HTTPException)
    async def _http_error(_request: Request, err: HTTPException) -> JSONResponse:
        detail = err.detail if isinstance(err.detail, dict) else {"code": "http_error", "message": str(err.detail)}
        return JSONResponse({"error": detail}, status_code=err.status_code, headers=err.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, err: RequestValidationError) -> JSONResponse:
        # FastAPI reads and validates a body before the route's dependencies: authenticate first,
        # so that a caller without a valid token gets 401 (and one out of scope 403), never a 422.
        try:
            await check_caller(request)
        except HTTPException as refused:
            return await _http_error(request, refused)
        errors = [_field_error(e) for e in err.errors()]
        first = errors[0] if errors else {"field": None, "message": "invalid request"}
        return JSONResponse(
            {
                "error": {
                    "code": "invalid",
                    "message": f"{first['field']}: {first['message']}",
                    "field": first["field"],
                    "errors": errors,
                }
            },
            status_code=422,
        )

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok", "service": spec.name}

    @app.get("/readyz", tags=["operations"])
    async def readyz(request: Request) -> JSONResponse:
        """NATS and PostgreSQL reachable; each projection's checkpoint and lag; the outboxes; the
        events this service's projections dead-lettered.

        Answers within a second whatever is down: every check runs at once, each bounded by
        :data:`READYZ_CHECK_SECONDS`, and one that runs out says ``"timeout"``.  200 ``ready``, or 200
        ``degraded`` when a projection holds dead letters (its read model lacks those events until
        they are fixed and replayed: serving goes on, an operator must look); 503 ``not_ready``
        when NATS or PostgreSQL is not reachable.
        """
        runtime: Runtime[Any] | None = getattr(request.app.state, "runtime", None)
        checks: dict[str, Any] = {"nats": False, "postgres": False, "projections": [], "outboxes": []}
        dead_letters: dict[str, int] = {}
        if runtime is not None:
            checks["nats"] = runtime.nc.is_connected

            async def postgres() -> None:
                async with runtime.pool.acquire() as conn:
                    await conn.fetchval("SELECT 1")

            async def held() -> dict[str, int]:
                names = list(runtime.runners)
                if not names:
                    return {}
                async with runtime.pool.acquire() as conn:
                    rows = await conn.fetch(
                        "SELECT projection, count(*) AS n FROM dead_letters WHERE projection = ANY($1::text[]) "
                        "GROUP BY projection",
                        names,
                    )
                return {r["projection"]: int(r["n"]) for r in rows}

            runners = list(runtime.runners.values())
            results = await asyncio.gather(
                _bounded(postgres()),
                _bounded(held()),
                *(_bounded(runner.status()) for runner in runners),
                *(_bounded(probe(runtime)) for probe in spec.outboxes),
            )
            pg, dead, statuses, outboxes = (
                results[0],
                results[1],
                results[2 : 2 + len(runners)],
                results[2 + len(runners) :],
            )
            if isinstance(pg, str):
                checks["postgres_error"] = pg  # the kind of failure only: a driver's message can carry hosts
                log.warning("readyz_postgres_failed", error=pg)
            else:
                checks["postgres"] = True
            if isinstance(dead, str):
                checks["dead_letters_error"] = dead
            else:
                dead_letters = dead
            for runner, status in zip(runners, statuses, strict=True):
                name = runner.projection.name
                if isinstance(status, str):
                    checks["projections"].append({"projection": name, "error": status})
                else:
                    checks["projections"].append({**status, "dead_letters": dead_letters.get(name, 0)})
            for probe, outbox in zip(spec.outboxes, outboxes, strict=True):
                if isinstance(outbox, str):
                    checks["outboxes"].append({"outbox": getattr(probe, "__name__", "outbox"), "error": outbox})
                else:
                    checks["outboxes"].append(dataclasses.asdict(outbox))
        ready = checks["nats"] and checks["postgres"]
        status = "not_ready" if not ready else "degraded" if sum(dead_letters.values()) else "ready"
        return JSONResponse(
            {"status": status, "service": spec.name, **checks, "dead_letters": sum(dead_letters.values())},
            status_code=200 if ready else 503,
        )

    lag_read_at: dict[str, float] = {}

    @app.get("/metrics", tags=["operations"], include_in_schema=False)
    async def metrics(request: Request) -> Response:
        """Prometheus exposition — unless it moved to the operations address (``metrics_address``)."""
        configured: Settings | None = getattr(request.app.state, "settings", None)
        if configured is not None and configured.metrics_address:
            return JSONResponse(
                {"error": {"code": "not_found", "message": "/metrics is served on the operations address"}},
                status_code=404,
            )
        return await exposition(getattr(request.app.state, "runtime", None))

    async def operations_metrics(request: Request) -> Response:
        """/metrics on the operations address (the side server's only route)."""
        return await exposition(getattr(app.state, "runtime", None))

    app.state.operations_app = Starlette(routes=[Route("/metrics", operations_metrics)])

    async def exposition(runtime: Runtime[Any] | None) -> Response:
        """Prometheus exposition.  The projections' lag gauges cost a database query and a consumer
        round trip to refresh, so a scrape refreshes them at most every ``LAG_REFRESH_SECONDS``: a
        scraper polling fast (or many scrapers) cannot turn /metrics into load on PostgreSQL and NATS."""
        if runtime is not None:
            moment = time.monotonic()
            for name, runner in runtime.runners.items():
                if moment - lag_read_at.get(name, -LAG_REFRESH_SECONDS) < LAG_REFRESH_SECONDS:
                    continue
                lag_read_at[name] = moment
                await _bounded(runner.status())  # refreshes the lag gauges
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/asyncapi", tags=["operations"])
    async def asyncapi(request: Request) -> JSONResponse:
        """AsyncAPI 3.0: the events this service publishes and consumes."""
        return JSONResponse(asyncapi_document(spec, request.app.state.settings))

    for router in spec.routers:
        app.include_router(router)
    if spec.configure is not None:
        spec.configure(app)
    declare_responses(app)
    return app


def serve(spec: ServiceSpec[Any]) -> None:
    """Run a service with uvicorn (uvloop) on its configured port: ``python -m services.<name>``."""
    import uvicorn

    settings = spec.settings_type()
    port = int(getattr(settings, spec.port_setting or f"{spec.name}_port"))
    started = time.time()
    app = create_app(spec, settings, quiet_gc=True)
    uvicorn.run(
        app,
        host=settings.host,
        port=port,
        loop="uvloop",
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=10,
        timeout_keep_alive=int(settings.http_keep_alive_seconds),
    )
    log.info("served", seconds=round(time.time() - started, 1))
