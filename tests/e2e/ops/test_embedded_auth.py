"""The embedded stack and the test suite run NATS with production's users (deploy/nats/permissions.toml).

`gridwork up` starts nats-server with one user per service and gives each service process only its
own password; the suite's server has the same users, so a service app under test connects as
itself and the test code as the admin.  A service reaching beyond its rights fails here first.
"""

from __future__ import annotations

import asyncio
import json
import stat
import urllib.request
from pathlib import Path

import asyncpg
import pytest

from services.cli.embedded import EmbeddedNats, free_port, local_nats_passwords
from services.cli.local import load_settings
from services.cli.stack import LocalStack
from services.visits.app import build_app
from shared.eventstore import EventStore, connect, nats_credentials
from shared.nats.users import load_permissions
from shared.settings import Settings
from tests.harness import Stack, running


def users_by_connection(nats: EmbeddedNats) -> dict[str, str]:
    """Connection name -> the user it logged in as, from the server's own monitoring."""
    with urllib.request.urlopen(f"{nats.monitor_url}/connz?auth=true&limit=4096", timeout=5) as r:
        conns = json.loads(r.read())["connections"]
    return {c.get("name", ""): c.get("authorized_user", "") for c in conns}


async def test_a_service_under_test_connects_as_its_own_user_and_the_test_as_the_admin(
    stack: Stack, settings: Settings
) -> None:
    if stack.nats is None:
        pytest.skip("the suite runs on a NATS server it did not start (no users)")
    admin = await connect(settings, "tests-admin-probe")
    try:
        async with running(build_app(settings)):
            users = users_by_connection(stack.nats)
    finally:
        await admin.close()
    assert users["gridwork-visits"] == "visits"
    assert users["tests-admin-probe"] == "admin"


def test_the_embedded_stacks_passwords_are_private_and_kept_across_starts(tmp_path: Path) -> None:
    first = local_nats_passwords(tmp_path, ["admin", "visits"])
    path = tmp_path / "nats_passwords.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # a later start (with a user added to the permissions file meanwhile) keeps the known ones
    again = local_nats_passwords(tmp_path, ["admin", "visits", "notify"])
    assert {u: again[u] for u in first} == first
    assert again["notify"] and again["notify"] not in first.values()


def test_who_a_connection_logs_in_as(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("GRIDWORK_NATS_USER", "GRIDWORK_NATS_PASSWORD", "GRIDWORK_NATS_PASSWORDS"):
        monkeypatch.delenv(var, raising=False)
    every = {"admin": "a-pw", "visits": "v-pw"}
    local = Settings(nats_passwords=every)
    assert nats_credentials(local) == ("admin", "a-pw")  # tools and tests: the admin
    assert nats_credentials(local, "visits") == ("visits", "v-pw")  # a service under test: itself
    production = Settings(nats_user="notify", nats_password="n-pw")
    assert nats_credentials(production) == ("notify", "n-pw")
    assert nats_credentials(Settings()) is None  # a server without users
    with pytest.raises(RuntimeError, match="no password for NATS user 'issues'"):
        nats_credentials(local, "issues")


async def test_gridwork_up_starts_nats_with_a_user_per_service(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The suite's PostgreSQL (a fresh database), the stack's own nats-server, one service process.
    for var in ("GRIDWORK_NATS_URL", "GRIDWORK_NATS_USER", "GRIDWORK_NATS_PASSWORD", "GRIDWORK_DATABASE_URL"):
        monkeypatch.delenv(var, raising=False)
    up = LocalStack(
        # what `gridwork up` reads from the environment (the service processes read the same)
        Settings(
            database_url=settings.database_url,
            namespace=settings.namespace,
            data_dir=tmp_path,
            jwt_secret=settings.jwt_secret,
            nats_port=free_port(),
            nats_monitor_port=free_port(),
            visits_port=free_port(),
            log_format="json",
        ),
        services=("visits",),
    )
    try:
        endpoints = await asyncio.to_thread(up.start, lambda _line: None)
        assert up.nats is not None
        assert "@" not in endpoints["nats"]  # no password in what the stack prints and writes
        assert users_by_connection(up.nats)["gridwork-visits"] == "visits"
        saved = json.loads((tmp_path / "nats_passwords.json").read_text())
        assert set(saved) == set(load_permissions())

        # PostgreSQL: a role per service, its password owner-only in the data dir; the visits
        # process connected as its own role, and that role cannot read notify's tables.
        db_passwords = tmp_path / "database_passwords.json"
        assert stat.S_IMODE(db_passwords.stat().st_mode) == 0o600
        assert set(json.loads(db_passwords.read_text())) == {"visits", "issues", "scoring", "notify", "console"}
        admin = await asyncpg.connect(settings.database_url)
        try:
            sessions = {
                r["usename"]
                for r in await admin.fetch(
                    "SELECT usename FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            }
        finally:
            await admin.close()
        assert sessions == {"gridwork_visits"}
        visits = await asyncpg.connect(up.settings.database_urls["visits"])
        try:
            assert await visits.fetchval("SELECT count(*) FROM visits_household_keys") == 0
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await visits.fetch("SELECT * FROM notify.notify_deliveries")
        finally:
            await visits.close()

        # A local tool (replay, simulate, bench) finds the running stack and logs in as the admin.
        tool = load_settings(data_dir=tmp_path, namespace=settings.namespace)
        nc = await connect(tool, "tests-tool")
        try:
            assert await EventStore(nc, tool).last_sequence() >= 0
            assert users_by_connection(up.nats)["tests-tool"] == "admin"
        finally:
            await nc.close()

        # A connection idle for longer than clients keep theirs (httpx: 5 s) is still open: the server
        # never closes one a client is just reusing (a reset mid-request failed a simulate run in CI).
        reader, writer = await asyncio.open_connection("127.0.0.1", up.settings.visits_port)
        try:
            for pause in (0, 6):
                await asyncio.sleep(pause)
                writer.write(b"GET /healthz HTTP/1.1\r\nHost: visits\r\n\r\n")
                await writer.drain()
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
                assert head.startswith(b"HTTP/1.1 200"), (pause, head)
                length = next(
                    int(v)
                    for k, v in (h.split(b": ", 1) for h in head.split(b"\r\n")[1:-2])
                    if k.lower() == b"content-length"
                )
                await reader.readexactly(length)
        finally:
            writer.close()
    finally:
        await asyncio.to_thread(up.stop, lambda _line: None)
