"""What every gridwork service shares: its runtime (connections), its HTTP app and how it is served.

A service describes itself with a :class:`ServiceSpec` (routers, projections, background tasks,
the events it publishes and consumes) and gets back a FastAPI app whose lifespan owns every
connection: NATS, the PostgreSQL pool, the event store, the projection runners.  The app has
``/healthz``, ``/readyz``, ``/metrics``, OpenAPI at ``/docs`` and AsyncAPI at ``/asyncapi``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import nats.errors
import structlog
from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from nats.aio.client import Client as NATS
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, Summary, generate_latest
from prometheus_fastapi_instrumentator import Instrumentator, metrics
from prometheus_fastapi_instrumentator.middleware import PrometheusInstrumentatorMiddleware
from starlette.middleware import Middleware
from starlette.types import ASGIApp

from .db import create_pool, migrate
from .errors import DomainError
from .events import Event
from .eventstore import ADMIN_USER, AppendError, ConcurrencyError, EventStore, connect, nats_credentials
from .logs import configure_logging
from .nats import patches
from .nats.broker_metrics import BrokerMetrics
from .projection import Projection, ProjectionRunner
from .settings import Settings

log = structlog.get_logger("gridwork.service")


@dataclass
class Runtime:
    """Live connections of one service process, built by the lifespan and passed down."""

    name: str
    settings: Settings
    nc: NATS
    pool: asyncpg.Pool
    store: EventStore
    runners: dict[str, ProjectionRunner] = field(default_factory=dict)
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)

    async def close(self) -> None:
        for runner in self.runners.values():
            runner.stop()
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, 10)
        with contextlib.suppress(Exception):
            await self.nc.drain()
        await self.pool.close()


Background = Callable[[Runtime], Awaitable[None]]


@dataclass(frozen=True)
class OutboxStatus:
    """What one outbox holds: ``pending`` is owed now (due, or being sent), ``scheduled`` waits for
    a later time (a retry's backoff, a deferred message), ``held`` cannot go anywhere yet (no
    destination configured), ``dead`` was given up on."""

    outbox: str
    pending: int
    scheduled: int = 0
    held: int = 0
    dead: int = 0


#: Reads one outbox's status; a service lists its probes in :attr:`ServiceSpec.outboxes`.
OutboxProbe = Callable[[Runtime], Awaitable[OutboxStatus]]


@dataclass
class ServiceSpec:
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
    #: (:func:`http_metrics`) and render errors with the app's exception handlers.
    ingress: Sequence[Callable[[ASGIApp], ASGIApp]] = ()
    #: What the service still owes the outside world, shown by ``/readyz`` (a client that must see
    #: every delivery made, like the demo, waits for these to reach zero as well as the lag).
    outboxes: Sequence[OutboxProbe] = ()


async def open_runtime(name: str, settings: Settings, projections: Sequence[Projection] = ()) -> Runtime:
    """Connect to NATS and PostgreSQL, make sure streams and tables exist, set up projections.

    NATS: as the service's own user (``visits`` for ``visits`` and ``visits-import``) when the
    settings know every user's password (embedded stack, tests), else as ``settings.nats_user``.
    """
    patches.install()
    context = name.split("-", 1)[0]
    user = context if context in settings.nats_passwords else None
    nc = await connect(settings, f"gridwork-{name}", user=user)
    pool = await create_pool(settings)
    broker_metrics = BrokerMetrics(context)  # FastStream's broker metrics, app_name = the service
    store = EventStore(nc, settings, broker_metrics)
    # On a server with users the admin made the streams; a service user only looks them up.
    credentials = nats_credentials(settings, user)
    await store.ensure_streams(manage=credentials is None or credentials[0] == ADMIN_USER)
    async with pool.acquire() as conn:
        await migrate(conn)
    runtime = Runtime(name, settings, nc, pool, store)
    for projection in projections:
        runner = ProjectionRunner(projection, nc=nc, pool=pool, settings=settings, broker_metrics=broker_metrics)
        await runner.setup()
        runtime.runners[projection.name] = runner
    return runtime


def _guard(name: str, coro_fn: Background, runtime: Runtime) -> asyncio.Task[Any]:
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


def asyncapi_document(spec: ServiceSpec, settings: Settings) -> dict[str, Any]:
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
    return doc.to_specification().to_jsonable()


class _RouteCachingInstrumentatorMiddleware(PrometheusInstrumentatorMiddleware):
    """prometheus-fastapi-instrumentator's middleware, resolving each method and path's route once.

    The library matches every request against the whole route table, flattened anew each time:
    0.2 ms of CPU per request on this machine, more than the rest of an ingest request's HTTP
    handling.  The route template depends only on the method and path, so it is remembered
    (bounded: paths carry ids).  Metrics, names and labels are the library's own.
    """

    def __init__(self, app: ASGIApp, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._handlers: dict[tuple[str, str, str], tuple[str, bool]] = {}

    def _get_handler(self, request: Request) -> tuple[str, bool]:
        scope = request.scope
        key = (scope["method"], scope.get("root_path", ""), scope["path"])
        handler = self._handlers.get(key)
        if handler is None:
            handler = super()._get_handler(request)
            if len(self._handlers) >= 10_000:
                self._handlers.clear()
            self._handlers[key] = handler
        return handler


_HIGHR_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 2.5, 3, 3.5, 4, 4.5, 5, 7.5, 10, 30, 60)


class _HttpMetrics:
    """The instrumentator's default HTTP metrics — same names, labels and buckets — each labelled child kept.

    ``metrics.default()`` looks every child up by its labels on every request (five lookups, each
    validating labels under a lock); the handler is a route template and the status a class
    (2xx…), so the children are few and kept here.  One set per process, shared by every app.
    """

    def __init__(self) -> None:
        self.total = Counter(
            "http_requests_total",
            "HTTP requests answered, by method, status class and route",
            ("method", "status", "handler"),
        )
        self.in_size = Summary(
            "http_request_size_bytes",
            "Request bodies by route, from the Content-Length header (0 without one)",
            ("handler",),
        )
        self.out_size = Summary(
            "http_response_size_bytes",
            "Response bodies by route, from the Content-Length header (0 without one)",
            ("handler",),
        )
        self.highr = Histogram(
            "http_request_duration_highr_seconds",
            "Request latency over all routes, in fine buckets for percentiles",
            buckets=_HIGHR_BUCKETS,
        )
        self.lowr = Histogram(
            "http_request_duration_seconds",
            "Request latency by method and route, in three coarse buckets",
            ("method", "handler"),
            buckets=(0.1, 0.5, 1),
        )
        self._children: dict[tuple[str, str, str], tuple[Any, Any, Any, Any]] = {}

    def __call__(self, info: metrics.Info) -> None:
        self.observe(
            info.method,
            info.modified_status,
            info.modified_handler,
            int(info.request.headers.get("Content-Length", 0)),
            int(info.response.headers.get("Content-Length", 0)) if info.response else 0,
            info.modified_duration,
        )

    def observe(self, method: str, status: str, handler: str, in_size: int, out_size: int, seconds: float) -> None:
        """One answered request: ``status`` is its class (``2xx``), ``handler`` its route template."""
        key = (method, status, handler)
        children = self._children.get(key)
        if children is None:
            children = (
                self.total.labels(method, status, handler),
                self.in_size.labels(handler),
                self.out_size.labels(handler),
                self.lowr.labels(method, handler),
            )
            self._children[key] = children
        total, in_size_, out_size_, lowr = children
        total.inc()
        in_size_.observe(in_size)
        out_size_.observe(out_size)
        self.highr.observe(seconds)
        lowr.observe(seconds)


_http_metrics: _HttpMetrics | None = None


def http_metrics() -> _HttpMetrics:
    """The process's HTTP metrics (prometheus-fastapi-instrumentator's names, labels and buckets)."""
    global _http_metrics
    if _http_metrics is None:
        _http_metrics = _HttpMetrics()
    return _http_metrics


def instrument(app: FastAPI) -> None:
    """HTTP metrics by prometheus-fastapi-instrumentator (``http_requests_total``, latencies)."""
    Instrumentator(excluded_handlers=["/metrics", "/healthz", "/readyz"]).add(http_metrics()).instrument(app)
    for i, mw in enumerate(app.user_middleware):
        if mw.cls is PrometheusInstrumentatorMiddleware:
            app.user_middleware[i] = Middleware(_RouteCachingInstrumentatorMiddleware, *mw.args, **mw.kwargs)


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


def create_app(spec: ServiceSpec, settings: Settings | None = None, *, quiet_gc: bool = False) -> FastAPI:
    """The FastAPI app of a service; its lifespan owns every connection.  ``quiet_gc``: a service
    process of its own (:func:`serve`) freezes what start-up built, out of the GC's reach."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        s = settings or spec.settings_type()
        configure_logging(s, spec.name)
        if not s.jwt_secret:
            raise RuntimeError("GRIDWORK_JWT_SECRET is not set: no service answers without token checks")
        app.state.settings = s
        runtime = await open_runtime(spec.name, s, spec.projections)
        app.state.runtime = runtime
        for hook in spec.on_start:
            await hook(runtime)
        for name, runner in runtime.runners.items():
            runtime.tasks.append(_guard(f"projection:{name}", lambda _rt, r=runner: r.run(), runtime))
        for task_fn in spec.background:
            runtime.tasks.append(_guard(getattr(task_fn, "__name__", "task"), task_fn, runtime))
        log.info("service_started", projections=list(runtime.runners))
        if quiet_gc:
            _quiet_gc()
        try:
            yield
        finally:
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
    if spec.ingress:
        inner = app.build_middleware_stack

        def build_middleware_stack() -> ASGIApp:
            stack = inner()
            for middleware in reversed(spec.ingress):
                stack = middleware(stack)
            return stack

        app.build_middleware_stack = build_middleware_stack  # type: ignore[method-assign]

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

    for unavailable in (AppendError, nats.errors.Error, TimeoutError, ConnectionError, asyncpg.PostgresConnectionError):
        app.add_exception_handler(unavailable, _unavailable)

    @app.exception_handler(HTTPException)
    async def _http_error(_request: Request, err: HTTPException) -> JSONResponse:
        detail = err.detail if isinstance(err.detail, dict) else {"code": "http_error", "message": str(err.detail)}
        return JSONResponse({"error": detail}, status_code=err.status_code, headers=err.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, err: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": ".".join(str(p) for p in e["loc"] if p != "body"), "message": e["msg"]} for e in err.errors()
        ]
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
        """NATS and PostgreSQL reachable; each projection's checkpoint and lag."""
        runtime: Runtime | None = getattr(request.app.state, "runtime", None)
        checks: dict[str, Any] = {"nats": False, "postgres": False, "projections": [], "outboxes": []}
        if runtime is not None:
            checks["nats"] = runtime.nc.is_connected
            try:
                async with runtime.pool.acquire(timeout=2) as conn:
                    await conn.fetchval("SELECT 1")
                checks["postgres"] = True
            except Exception as err:
                checks["postgres_error"] = str(err)
            for runner in runtime.runners.values():
                try:
                    checks["projections"].append(await runner.status())
                except Exception as err:
                    checks["projections"].append({"projection": runner.projection.name, "error": str(err)})
            for probe in spec.outboxes:
                try:
                    checks["outboxes"].append(dataclasses.asdict(await probe(runtime)))
                except Exception as err:
                    checks["outboxes"].append({"outbox": getattr(probe, "__name__", "outbox"), "error": str(err)})
        ready = checks["nats"] and checks["postgres"]
        return JSONResponse(
            {"status": "ready" if ready else "not_ready", "service": spec.name, **checks},
            status_code=200 if ready else 503,
        )

    @app.get("/metrics", tags=["operations"], include_in_schema=False)
    async def metrics(request: Request) -> Response:
        runtime: Runtime | None = getattr(request.app.state, "runtime", None)
        if runtime is not None:
            for runner in runtime.runners.values():
                with contextlib.suppress(Exception):
                    await runner.status()  # refreshes the lag gauges
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/asyncapi", tags=["operations"])
    async def asyncapi(request: Request) -> JSONResponse:
        """AsyncAPI 3.0: the events this service publishes and consumes."""
        return JSONResponse(asyncapi_document(spec, request.app.state.settings))

    for router in spec.routers:
        app.include_router(router)
    return app


def serve(spec: ServiceSpec) -> None:
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
