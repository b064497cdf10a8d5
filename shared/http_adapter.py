"""Everything gridwork does to and around its HTTP libraries, in one place.

* The HTTP metrics: prometheus-fastapi-instrumentator's names, labels and buckets
  (``http_requests_total``, ``http_request_duration_seconds``…), each labelled child kept
  (:func:`http_metrics`), installed by :func:`instrument`.
* :class:`RouteCachingInstrumentatorMiddleware` overrides the instrumentator middleware's private
  ``_get_handler``; it was written for the releases in :data:`INSTRUMENTATOR_SUPPORTED` (pyproject
  bounds the dependency the same way) and stands down — the library's own middleware runs — on any
  other release.
* :func:`add_ingress` puts ASGI middleware in front of the whole app by wrapping Starlette's
  ``build_middleware_stack`` (a public method that FastAPI and Starlette call once, at the first
  request); a hot route's fast path (visits ingest) lives there.
* :class:`SideServer` serves a second ASGI app (``/metrics`` on the operations address) from the
  same process and event loop, with a uvicorn server that leaves the signals to the main one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
from collections.abc import Callable, Iterator, Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any, cast

import structlog
import uvicorn
from fastapi import FastAPI, Request
from prometheus_client import Counter, Histogram, Summary
from prometheus_fastapi_instrumentator import Instrumentator, metrics
from prometheus_fastapi_instrumentator.middleware import PrometheusInstrumentatorMiddleware
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = structlog.get_logger("gridwork.http")

#: prometheus-fastapi-instrumentator major releases whose ``_get_handler`` the cache overrides.
INSTRUMENTATOR_SUPPORTED = (7, 8)


def instrumentator_patchable() -> bool:
    """Whether the installed prometheus-fastapi-instrumentator is a release the cache was written for."""
    try:
        major = int(version("prometheus-fastapi-instrumentator").split(".")[0])
    except (PackageNotFoundError, ValueError):
        return False
    if major not in INSTRUMENTATOR_SUPPORTED:
        log.warning("instrumentator_cache_disabled", major=major, written_for=INSTRUMENTATOR_SUPPORTED)
        return False
    return True


def add_ingress(app: FastAPI, ingress: Sequence[Callable[[ASGIApp], ASGIApp]]) -> None:
    """Run ``ingress`` middleware (outermost first) in front of the app's whole middleware stack —
    before Starlette's error handling and the HTTP metrics."""
    inner = app.build_middleware_stack

    def build_middleware_stack() -> ASGIApp:
        stack = inner()
        for middleware in reversed(ingress):
            stack = middleware(stack)
        return stack

    app.build_middleware_stack = build_middleware_stack  # type: ignore[method-assign]


#: The vault's reference brackets (shared.vault), as a body may spell them: UTF-8, a JSON escape,
#: form encoding.  No request may carry them: a reference typed into any field would otherwise be
#: revealed as the text it stands for.
_RESERVED = re.compile(rb"\xe2\x9f[\xa6\xa7]|\\u27e[67]|%e2%9f%a[67]", re.IGNORECASE)
#: An escape's backslash, not itself escaped (``\\u000b`` is text: a backslash, then ``u000b``).
_ESCAPE = rb"(?<!\\)(?:\\\\)*\\"
#: A NUL, as a body may spell it: PostgreSQL's text cannot hold one, so a NUL accepted would be
#: an event no projection can fold.
_NUL = {
    "raw": re.compile(rb"\x00"),
    "json": re.compile(_ESCAPE + rb"u0000", re.IGNORECASE),
    "form": re.compile(rb"%00"),
}
#: The other C0 control characters but tab, LF and CR, as a body may spell them: XML 1.0 (the
#: XLSX exports, the Open311 feed) cannot hold them, and no name or description needs one.
_CONTROL = {
    "raw": re.compile(rb"[\x01-\x08\x0b\x0c\x0e-\x1f]"),
    "json": re.compile(_ESCAPE + rb"(?:u00(?:0[1-8bcef]|1[0-9a-f])|[bf])", re.IGNORECASE),
    "form": re.compile(rb"%(?:0[1-8bcef]|1[0-9a-f])", re.IGNORECASE),
}
#: Control characters in a query string (a NUL, and the C0 controls but tab, LF and CR), encoded.
_QUERY_CONTROL = re.compile(rb"%(?:0[0-8bcef]|1[0-9a-f])|[\x00-\x08\x0b\x0c\x0e-\x1f]", re.IGNORECASE)


def _text_kind(scope: Scope) -> str | None:
    """How the request's body spells text the screen reads — ``json`` (escapes), ``form``
    (percent-encoding), ``text`` — or None for a body its own parser reads (a spreadsheet upload)."""
    kind = next((v for k, v in scope["headers"] if k == b"content-type"), b"").split(b";", 1)[0].strip().lower()
    if kind in (b"", b"application/json") or kind.endswith(b"+json"):
        return "json"
    if kind == b"application/x-www-form-urlencoded":
        return "form"
    return "text" if kind.startswith(b"text/") else None


def _holds(patterns: dict[str, re.Pattern[bytes]], raw: bytes, kind: str) -> bool:
    """Whether ``raw`` holds one of ``patterns``' characters, as a body of ``kind`` spells it."""
    return bool(patterns["raw"].search(raw) or (kind in patterns and patterns[kind].search(raw)))


class BodyLimit:
    """The outermost layer of every service: a request body over its limit is answered 413 at once —
    by its Content-Length before a byte of it is read, and while it streams in when it has none —
    before the token, the route or the JSON parser sees anything of it.  A body carrying the
    vault's reserved reference brackets (``⟦``, ``⟧``), a NUL or another C0 control character
    but tab, LF and CR — as raw bytes, JSON escapes (``\\u000b``, ``\\b``, ``\\f``) or a form's
    percent-encoding — is answered 422: no text gridwork stores, folds or exports holds one.

    The limit is ``max_body_bytes`` of the app's settings (1 MiB), or the larger one a path ending
    in one of ``larger`` takes (a ledger import); Open311's paths answer in Open311's error format.
    """

    def __init__(self, app: ASGIApp, larger: Sequence[tuple[str, str]] = ()) -> None:
        self.app = app
        #: (path suffix, name of the settings field holding that path's limit)
        self.larger = tuple(larger)

    def _limit(self, scope: Scope) -> int:
        settings = getattr(getattr(scope.get("app"), "state", None), "settings", None)
        path: str = scope["path"]
        for suffix, setting in self.larger:
            if path.endswith(suffix):
                return int(getattr(settings, setting, 20 * 1024 * 1024))
        return int(getattr(settings, "max_body_bytes", 1024 * 1024))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        # A control character in the path or the query reaches SQL as a NUL or an id no table has:
        # refused here, for every route, with the part that carries it.
        if any(ord(c) < 0x20 for c in scope["path"]):
            return await self._answer(scope, send, 422, "invalid", "the path holds a control character", "path")
        if _QUERY_CONTROL.search(scope.get("query_string", b"")):
            return await self._answer(scope, send, 422, "invalid", "the query holds a control character", "query")
        limit = self._limit(scope)
        declared = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            return await self._refuse(scope, send, limit)
        if declared == b"0" or scope.get("method") in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        # Read the body here (at most the limit: a declared length is all the server reads), look
        # for reserved characters, then hand it on as it came.
        messages: list[Message] = []
        received = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            received += len(message.get("body", b""))
            if received > limit:
                return await self._refuse(scope, send, limit)
            if not message.get("more_body", False):
                break
        raw = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.request")
        kind = _text_kind(scope)
        if kind is None:  # a spreadsheet upload is binary: its parser reads it, cell by cell
            raw = b""
        if _RESERVED.search(raw) or _RESERVED.search(scope.get("query_string", b"")):
            return await self._answer(
                scope, send, 422, "invalid", "the characters ⟦ and ⟧ are reserved and may not be sent"
            )
        if kind is not None and _holds(_NUL, raw, kind):
            return await self._answer(scope, send, 422, "invalid", "a NUL character (\\u0000) cannot be stored")
        if kind is not None and _holds(_CONTROL, raw, kind):
            return await self._answer(
                scope,
                send,
                422,
                "invalid",
                "a control character (U+0001–U+001F but tab, line feed and carriage return) cannot be stored",
            )

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    @classmethod
    async def _refuse(cls, scope: Scope, send: Send, limit: int) -> None:
        await cls._answer(scope, send, 413, "too_large", f"the request body is larger than {limit} bytes")

    @staticmethod
    async def _answer(scope: Scope, send: Send, status: int, code: str, message: str, field: str = "body") -> None:
        if scope["path"].startswith("/open311/"):
            body = json.dumps([{"code": status, "description": message}], ensure_ascii=False).encode()
        else:
            error = {"code": code, "message": message, "field": field}
            body = json.dumps({"error": error}, ensure_ascii=False).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        if status == 413:
            headers.append((b"connection", b"close"))  # the rest of the body is not read
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        http_metrics().observe(scope.get("method", "POST"), "4xx", "body_screen", 0, len(body), 0.0)


class RouteCachingInstrumentatorMiddleware(PrometheusInstrumentatorMiddleware):
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
    if not instrumentator_patchable():
        return  # the library's own middleware, uncached: slower, the same metrics
    for i, mw in enumerate(app.user_middleware):
        if cast(Any, mw.cls) is PrometheusInstrumentatorMiddleware:  # Starlette types cls as a factory
            app.user_middleware[i] = Middleware(cast(Any, RouteCachingInstrumentatorMiddleware), *mw.args, **mw.kwargs)


def split_address(address: str) -> tuple[str, int]:
    """``host:port`` (an IPv6 host in brackets: ``[::1]:9464``) as a host and a port."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{address!r} is not host:port")
    return host.removeprefix("[").removesuffix("]"), int(port)


class _SignalFreeServer(uvicorn.Server):
    """A uvicorn server that installs no signal handlers: the process's main server owns SIGINT
    and SIGTERM (and its shutdown stops this one through the app's lifespan)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class SideServer:
    """A second HTTP server for ``app`` in this process's event loop, on ``address`` (host:port).

    :meth:`start` binds the socket itself, so an address in use fails the start with an error that
    names the setting (uvicorn would log it and exit the process)."""

    def __init__(self, app: ASGIApp, address: str, setting: str = "address") -> None:
        self.app = app
        self.address = address
        self.setting = setting
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self, timeout: float = 10) -> None:
        """Bind and serve; returns once the server accepts connections."""
        host, port = split_address(self.address)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            sock = socket.create_server((host, port), family=family, reuse_port=False)
        except OSError as err:
            raise RuntimeError(f"{self.setting}={self.address}: cannot listen there ({err.strerror})") from None
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app, lifespan="off", log_config=None, log_level="warning", access_log=False, timeout_keep_alive=5
        )
        server = self._server = _SignalFreeServer(config)
        self._task = asyncio.create_task(server.serve(sockets=[sock]), name=f"side-server:{self.address}")
        deadline = asyncio.get_running_loop().time() + timeout
        while not server.started:
            if self._task.done() or asyncio.get_running_loop().time() > deadline:
                await self.stop()
                raise RuntimeError(f"{self.setting}={self.address}: the server did not start")
            await asyncio.sleep(0.01)
        log.info("side_server_started", address=self.address, port=self.port)

    async def stop(self, grace: float = 5) -> None:
        """Stop serving (connections get ``grace`` seconds to finish)."""
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(self._task), grace)
        except TimeoutError:
            self._server.force_exit = True
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        except Exception:
            log.exception("side_server_failed", address=self.address)
        self._server = self._task = None
