"""The console service: the web front where a community and a street do their work.

It holds the accounts (their events and read model) and the sessions; everything else it shows,
it asks the four services for, as the signed-in person (:mod:`.gateway`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from shared.events.console import EVENTS
from shared.service import Runtime, ServiceSpec, create_app

from .bootstrap import ConsoleDeps, bootstrap
from .gateway import ApiError
from .projections import ConsoleAccounts
from .settings import ConsoleSettings
from .web.i18n import Translator
from .web.render import language, render
from .web.routes import ROUTERS
from .web.sessions import COOKIE, CsrfRefused, NotSignedIn, PasswordChangeDue, RoleRefused

HERE = Path(__file__).resolve().parent
MIGRATIONS = HERE / "migrations"


async def live_hub(runtime: Runtime[Any]) -> None:
    """Background: the one NATS subscription feeding the open pages' live updates."""
    deps: ConsoleDeps = runtime.deps
    await deps.hub.run()


async def close_gateway(runtime: Runtime[Any]) -> None:
    """Background: nothing to run; closes the HTTP client to the services when the service stops."""
    import asyncio

    try:
        await asyncio.Event().wait()
    finally:
        await runtime.deps.gateway.close()


SPEC: ServiceSpec[ConsoleDeps] = ServiceSpec(
    name="console",
    title="Console",
    description=(
        "The web front of a community and a street: accounts and sign-in, today's work, the board, "
        "the problem workbench, the ledger, the directory and the map."
    ),
    routers=ROUTERS,
    projections=[ConsoleAccounts()],
    background=[live_hub, close_gateway],
    publishes=list(EVENTS),
    port_setting="console_port",
    settings_type=ConsoleSettings,
    wire=bootstrap,
    migrations=[MIGRATIONS],
    configure=lambda app: configure(app),
)


def _error_page(request: Request, status: int, message: str, detail: str = "") -> Response:
    return render(request, "error.html", None, status=status, message=message, detail=detail)


def configure(app: FastAPI) -> None:
    """``ServiceSpec.configure``: the static files and the HTML answers to refusals and errors."""
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.exception_handler(NotSignedIn)
    async def not_signed_in(request: Request, exc: NotSignedIn) -> Response:
        if request.headers.get("x-fragment") or request.url.path == "/live":
            return Response(status_code=401)
        response = RedirectResponse(exc.next_url, status_code=303)
        if request.cookies.get(COOKIE):
            response.delete_cookie(COOKIE)
        return response

    @app.exception_handler(PasswordChangeDue)
    async def password_due(request: Request, exc: PasswordChangeDue) -> Response:
        return RedirectResponse("/password", status_code=303)

    @app.exception_handler(CsrfRefused)
    async def csrf_refused(request: Request, exc: CsrfRefused) -> Response:
        return _error_page(request, 403, Translator(language(request))("csrf_refused"))

    @app.exception_handler(RoleRefused)
    async def role_refused(request: Request, exc: RoleRefused) -> Response:
        return _error_page(request, 403, Translator(language(request))("forbidden_page"))

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> Response:
        t = Translator(language(request))
        key = {401: "session_expired", 403: "forbidden_page", 404: "not_found_page"}.get(exc.status)
        if exc.status >= 500:
            key = "service_unavailable"
        return _error_page(
            request, exc.status if exc.status < 500 else 503, t(key) if key else exc.message, exc.message
        )


def build_app(settings: ConsoleSettings | None = None) -> FastAPI:
    """The ASGI app (tests pass their own settings; `python -m services.console` reads the environment)."""
    return create_app(SPEC, settings)
