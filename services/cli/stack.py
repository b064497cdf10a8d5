"""Core ``gridwork`` commands: up, token, migrate, replay and the foundation benchmarks."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from shared.auth import ROLES, mint_token
from shared.db import service_role
from shared.keywrap import KEK_HOLDERS
from shared.nats.users import load_permissions, render_authorization
from shared.outbound import LOOPBACK_TARGETS
from shared.projection import Projection
from shared.settings import Settings

from .catalog import migrate_services
from .embedded import EmbeddedPostgres, NatsNode, local_database_passwords, local_nats_passwords, provision_database
from .local import load_settings, local_kek_file


def cmd_token(args: argparse.Namespace) -> int:
    settings = load_settings()
    print(
        mint_token(
            settings,
            role=args.role,
            sub=args.sub,
            community=args.community,
            street=args.street,
            grid=args.grid,
            worker_id=args.worker,
            agency=args.agency,
            agency_kind=args.agency_kind,
            ttl_seconds=args.ttl,
        )
    )
    return 0


def cmd_migrate(_args: argparse.Namespace) -> int:
    applied = asyncio.run(migrate_services(load_settings()))
    print("\n".join(applied) if applied else "up to date")
    return 0


def _run_bench(what: str, **kw: Any) -> int:
    import uvloop

    from . import bench

    if what == "append":
        uvloop.run(bench.bench_append(n=kw["events"], aggregates=kw["aggregates"]))
    elif what == "fold":
        uvloop.run(bench.bench_fold(n=kw["events"]))
    elif what == "clients":
        uvloop.run(bench.bench_clients(n=kw["events"], repeats=kw["repeats"], python=kw["python"]))
    else:
        uvloop.run(bench.bench_replay(n=kw["events"], batch=kw["batch"]))
    return 0


def register(
    commands: argparse._SubParsersAction,
    bench: argparse._SubParsersAction,
    projections: Mapping[str, Projection] | None = None,
) -> None:
    """Add the core commands."""
    token = commands.add_parser("token", help="mint a bearer token for local use")
    token.add_argument("--role", required=True, choices=ROLES)
    token.add_argument("--community")
    token.add_argument("--street")
    token.add_argument("--grid")
    token.add_argument("--worker", help="worker id (grid_worker role)")
    token.add_argument("--agency", help="the agency's own id (agency role): cases assigned to it by name")
    token.add_argument(
        "--agency-kind",
        choices=("property_management", "police", "street_office", "urban_management"),
        help="what kind of agency (agency role): the escalations it receives",
    )
    token.add_argument("--sub")
    token.add_argument("--ttl", type=int, default=12 * 3600, help="seconds (default 12 h)")
    token.set_defaults(handler=cmd_token)

    migrate = commands.add_parser("migrate", help="apply the SQL migrations")
    migrate.set_defaults(handler=cmd_migrate)

    append = bench.add_parser("append", help="pipelined appends vs one awaited append per event")
    append.add_argument("--events", type=int, default=30_000)
    append.add_argument("--aggregates", type=int, default=100_000, help="design check: N aggregates (0 skips)")
    append.set_defaults(handler=lambda a: _run_bench("append", events=a.events, aggregates=a.aggregates))
    fold = bench.add_parser("fold", help="projection fold vs one transaction per event")
    fold.add_argument("--events", type=int, default=50_000)
    fold.set_defaults(handler=lambda a: _run_bench("fold", events=a.events))
    rep = bench.add_parser("replay", help="projection replay vs the raw consume rate")
    rep.add_argument("--events", type=int, default=100_000)
    rep.add_argument("--batch", type=int, default=5000, help="events per replay transaction")
    rep.set_defaults(handler=lambda a: _run_bench("replay", events=a.events, batch=a.batch))
    clients = bench.add_parser(
        "clients", help="nats-py patched vs stock vs the newer nats-core/nats-jetstream (Python 3.13) clients"
    )
    clients.add_argument("--events", type=int, default=30_000)
    clients.add_argument("--repeat", type=int, default=3)
    clients.add_argument("--python", help="a Python ≥ 3.13 with nats-core and nats-jetstream (default: made once)")
    clients.set_defaults(handler=lambda a: _run_bench("clients", events=a.events, repeats=a.repeat, python=a.python))

    up = commands.add_parser("up", help="start NATS, PostgreSQL (unless configured) and the four services")
    up.add_argument("--data-dir", help="where the embedded servers keep their data (default ./.gridwork)")
    up.set_defaults(handler=cmd_up)


# ---------------------------------------------------------------------------- gridwork up

SERVICE_NAMES = ("visits", "issues", "scoring", "notify", "console")


class LocalStack:
    """The embedded stack plus the four services as separate processes (``gridwork up``)."""

    def __init__(self, settings: Settings, services: tuple[str, ...] = SERVICE_NAMES) -> None:
        self.settings = settings
        self.services = services
        self.nats: NatsNode | None = None
        self.pg: EmbeddedPostgres | None = None
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.endpoints: dict[str, Any] = {}
        #: How each service was started (its environment), so the supervisor starts it again the same way.
        self.envs: dict[str, dict[str, str]] = {}
        self.started_at: dict[str, float] = {}
        self.restarts: dict[str, int] = {}
        self.restart_at: dict[str, float] = {}  # services waiting out their backoff

    def start(self, echo: Callable[[str], None] = print) -> dict[str, Any]:
        s = self.settings
        data = s.data_dir.resolve()
        data.mkdir(parents=True, exist_ok=True)
        nats_url, db_url = s.nats_url, s.database_url
        # A server given with every user's password (``gridwork cluster up``): each service still
        # logs in as its own user.
        passwords: dict[str, str] = dict(s.nats_passwords)
        if not nats_url:
            # The same users and permissions as production (deploy/nats/permissions.toml), so a
            # service reaching beyond its rights fails here, not after a deployment.
            passwords = local_nats_passwords(data, load_permissions(s.namespace))
            echo(
                f"starting nats-server (JetStream, sync_interval={s.sync_interval}, a user per service) "
                f"in {data / 'nats'}"
            )
            self.nats = NatsNode(
                data / "nats",
                port=s.nats_port,
                monitor_port=s.nats_monitor_port,
                sync_interval=s.sync_interval,
                authorization=render_authorization(s.namespace, passwords),
            ).start()
            nats_url = self.nats.url
        if not db_url:
            echo(f"starting PostgreSQL in {data / 'pg'}")
            self.pg = EmbeddedPostgres(data / "pg").start()
            db_url = self.pg.url
        # A PostgreSQL role per service owning its schema, its password kept 0600 in the data dir:
        # each service process gets its own DSN; this process and local tools keep the admin's.
        db_passwords = local_database_passwords(data, SERVICE_NAMES)
        database_urls = asyncio.run(provision_database(db_url, SERVICE_NAMES, db_passwords))
        if self.pg is not None:
            asyncio.run(self.pg.require_passwords(service_role(name) for name in SERVICE_NAMES))
        update: dict[str, Any] = {"nats_url": nats_url, "database_url": db_url, "database_urls": database_urls}
        if passwords:
            update["nats_passwords"] = passwords  # this process (migrations, streams) is the admin
        self.settings = s = s.model_copy(update=update)
        asyncio.run(_prepare(s))
        secrets = ("GRIDWORK_NATS_PASSWORDS", "GRIDWORK_DATABASE_URLS")
        env = {
            **{k: v for k, v in os.environ.items() if k not in secrets},
            "GRIDWORK_NATS_URL": nats_url,
            "GRIDWORK_JWT_SECRET": s.jwt_secret,
            "GRIDWORK_DATA_DIR": str(data),
            "GRIDWORK_NAMESPACE": s.namespace,
            "GRIDWORK_HOST": s.host,
            "GRIDWORK_STREAM_REPLICAS": str(s.stream_replicas),
        }
        if "GRIDWORK_OUTBOUND_ALLOWED_TARGETS" not in os.environ:
            # A laptop's stack: its receivers (the demo's, a developer's) listen on loopback.  Compose
            # sets nothing, so a deployment reaches public addresses only unless its operator says so.
            env["GRIDWORK_OUTBOUND_ALLOWED_TARGETS"] = json.dumps(s.outbound_allowed_targets or list(LOOPBACK_TARGETS))
        logs = data / "logs"
        logs.mkdir(exist_ok=True)
        urls: dict[str, str] = {}
        # The KEK reaches only the services holding personal data (shared.keywrap.KEK_HOLDERS).
        env = {k: v for k, v in env.items() if not k.startswith("GRIDWORK_KEK")}
        kek_env = {"GRIDWORK_KEK_RETIRED": s.kek_retired} if s.kek_retired else {}
        if s.kek_retired_file:
            kek_env["GRIDWORK_KEK_RETIRED_FILE"] = str(s.kek_retired_file)
        if s.kek and not s.kek_file:
            kek_env["GRIDWORK_KEK"] = s.kek
        else:
            kek_env["GRIDWORK_KEK_FILE"] = str(s.kek_file or local_kek_file(data))
        for name in self.services:
            port = int(getattr(s, f"{name}_port"))
            # each service process knows its own database role only
            service_env = {
                **env,
                f"GRIDWORK_{name.upper()}_PORT": str(port),
                "GRIDWORK_DATABASE_URL": database_urls[name],
            }
            if name in KEK_HOLDERS:
                service_env.update(kek_env)
            if name == "console":  # the web front calls the others where they were started
                service_env.update({f"GRIDWORK_CONSOLE_{other.upper()}_URL": u for other, u in urls.items()})
            if name in passwords:
                # each service process knows its own password only
                service_env.update(GRIDWORK_NATS_USER=name, GRIDWORK_NATS_PASSWORD=passwords[name])
            self.envs[name] = service_env
            self._spawn(name)
            urls[name] = f"http://{s.host}:{port}"
        for name, url in urls.items():
            _wait_ready(name, url, self.procs[name], logs / f"{name}.log")
        self.endpoints = {
            "nats": nats_url,
            "nats_monitor": self.nats.monitor_url if self.nats else None,
            "database": db_url,
            "services": urls,
            "docs": {name: f"{url}/docs" for name, url in urls.items()},
            "asyncapi": {name: f"{url}/asyncapi" for name, url in urls.items()},
            "metrics": {name: f"{url}/metrics" for name, url in urls.items()},
            "data_dir": str(data),
        }
        if passwords:
            self.endpoints["nats_passwords_file"] = str(data / "nats_passwords.json")
        (data / "endpoints.json").write_text(json.dumps(self.endpoints, indent=2))
        return self.endpoints

    def _spawn(self, name: str) -> None:
        logs = self.settings.data_dir.resolve() / "logs"
        with open(logs / f"{name}.log", "ab") as log:  # the child keeps its own copy of the descriptor
            self.procs[name] = subprocess.Popen(
                [sys.executable, "-m", f"services.{name}"],
                env=self.envs[name],
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        self.started_at[name] = time.monotonic()

    def check(self) -> list[str]:
        """Names of services whose process has exited."""
        return [name for name, p in self.procs.items() if p.poll() is not None]

    def supervise(self, echo: Callable[[str], None] = print) -> None:
        """One round of supervision, as a process supervisor would: a service that exited is started
        again after a backoff (1 s, doubling to :data:`RESTART_BACKOFF_MAX`; back to 1 s once it has
        run for :data:`RESTART_STABLE_SECONDS`), with a log line each time."""
        moment = time.monotonic()
        for name in self.check():
            if name in self.restart_at:
                continue
            proc = self.procs[name]
            if moment - self.started_at.get(name, moment) >= RESTART_STABLE_SECONDS:
                self.restarts[name] = 0  # it had been running well: this exit is a new story
            tries = self.restarts.get(name, 0)
            delay = min(RESTART_BACKOFF_MAX, RESTART_BACKOFF_INITIAL * 2**tries)
            self.restart_at[name] = moment + delay
            echo(
                f"service {name} exited with {_exit_text(proc.returncode)}; restarting it in {delay:g} s "
                f"(see {self.settings.data_dir / 'logs' / (name + '.log')})"
            )
        for name, when in list(self.restart_at.items()):
            if moment < when:
                continue
            del self.restart_at[name]
            self.restarts[name] = self.restarts.get(name, 0) + 1
            self._spawn(name)
            echo(f"service {name} restarted (pid {self.procs[name].pid}, restart {self.restarts[name]})")

    def stop(self, echo: Callable[[str], None] = print) -> None:
        self.restart_at.clear()
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for name, proc in self.procs.items():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                echo(f"{name} did not stop in 15 s; killing it")
                proc.kill()
        self.procs.clear()
        if self.nats:
            self.nats.stop()
        if self.pg:
            self.pg.stop()
        (self.settings.data_dir / "endpoints.json").unlink(missing_ok=True)
        echo("stopped; data kept in " + str(self.settings.data_dir.resolve()))


#: The supervisor's backoff before starting an exited service again: doubling from the first to the last.
RESTART_BACKOFF_INITIAL = 1.0
RESTART_BACKOFF_MAX = 30.0
#: A service that ran this long before exiting starts again after the first backoff.
RESTART_STABLE_SECONDS = 60.0


def _exit_text(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"status {code}"


async def _prepare(settings: Settings) -> None:
    """Migrations and streams, once, before the services start (as the NATS admin when there are
    users; each service's migrations as its database role)."""
    from shared.eventstore import EventStore, connect

    nc = await connect(settings, "gridwork-up")
    try:
        await EventStore(nc, settings).ensure_streams()
    finally:
        await nc.close()
    await migrate_services(settings)


def _wait_ready(name: str, url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            raise RuntimeError(f"service {name} exited with {proc.returncode}; its log ends:\n{tail}")
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"service {name} not ready at {url} within {timeout}s (see {log})")


def print_endpoints(endpoints: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="gridwork is up")
    table.add_column("service")
    table.add_column("URL")
    table.add_column("API docs")
    for name, url in endpoints["services"].items():
        table.add_row(name, url, endpoints["docs"][name])
    Console().print(table)
    print(f"NATS      {endpoints['nats']}")
    print(f"Postgres  {endpoints['database']}")
    print(f"endpoints written to {Path(endpoints['data_dir']) / 'endpoints.json'}")


def run_until_signalled(stack: LocalStack) -> None:
    """Block until Ctrl-C or SIGTERM, watching the services; then stop everything."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            stack.supervise()
    finally:
        stack.stop()


def cmd_up(args: argparse.Namespace) -> int:
    overrides: dict[str, Any] = {}
    if args.data_dir:
        overrides["data_dir"] = Path(args.data_dir)
    settings = load_settings(use_running_stack=False, **overrides)
    stack = LocalStack(settings)
    try:
        endpoints = stack.start()
    except BaseException:
        stack.stop()
        raise
    print_endpoints(endpoints)
    print("Ctrl-C stops everything (the data stays for the next start).")
    run_until_signalled(stack)
    return 0
