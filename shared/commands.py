"""Core ``gridwork`` commands: up, token, migrate, replay and the foundation benchmarks."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
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

from .auth import ROLES, mint_token
from .cluster import NatsNode
from .embedded import EmbeddedPostgres, local_nats_passwords
from .natsauth import load_permissions, render_authorization
from .projection import Projection
from .settings import Settings


def load_settings(*, use_running_stack: bool = True, **overrides: object) -> Settings:
    """Settings from the environment.

    Unset server URLs fall back to the ``endpoints.json`` of a stack ``gridwork up`` runs in the data
    dir, and the JWT secret to the data dir's (created on first use), so local commands just work.
    """
    settings = Settings(**overrides)  # type: ignore[arg-type]
    endpoints = settings.data_dir / "endpoints.json"
    if (not settings.nats_url or not settings.database_url) and endpoints.exists() and use_running_stack:
        # A stack started by `gridwork up` in this data dir: talk to its servers.
        known = json.loads(endpoints.read_text())
        update: dict[str, Any] = {
            "nats_url": settings.nats_url or known.get("nats"),
            "database_url": settings.database_url or known.get("database"),
        }
        passwords = known.get("nats_passwords_file")
        if not settings.nats_url and passwords and not settings.nats_user and Path(passwords).exists():
            # its NATS users' passwords (0600, ours): local tools log in as admin by default
            update["nats_passwords"] = json.loads(Path(passwords).read_text())
        settings = settings.model_copy(update=update)
    if not settings.jwt_secret:
        settings = settings.model_copy(update={"jwt_secret": local_jwt_secret(settings.data_dir)})
    return settings


def local_jwt_secret(data_dir: Path) -> str:
    """The embedded stack's signing secret, created on first use under the data directory."""
    path = data_dir / "jwt_secret"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


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
            ttl_seconds=args.ttl,
        )
    )
    return 0


def cmd_migrate(_args: argparse.Namespace) -> int:
    from .db import create_pool, migrate

    async def run() -> list[str]:
        pool = await create_pool(load_settings())
        async with pool.acquire() as conn:
            applied = await migrate(conn)
        await pool.close()
        return applied

    applied = asyncio.run(run())
    print("\n".join(applied) if applied else "up to date")
    return 0


def _run_bench(what: str, **kw: int) -> int:
    import uvloop

    from . import bench

    if what == "append":
        uvloop.run(bench.bench_append(n=kw["events"], aggregates=kw["aggregates"]))
    elif what == "fold":
        uvloop.run(bench.bench_fold(n=kw["events"]))
    else:
        uvloop.run(bench.bench_replay(n=kw["events"], batch=kw["batch"]))
    return 0


async def simulate_into_store(
    settings: Settings,
    communities: int,
    days: int,
    seed: int,
    start: str,
    households: int,
    progress: Callable[[int, int, int], None] | None = None,
) -> dict[str, Any]:
    """Generate the deterministic workload and append it straight into the event store."""
    from datetime import date

    from . import natsfix
    from .eventstore import EventStore, connect
    from .simulate import by_aggregate, generate

    natsfix.install()
    nc = await connect(settings, "gridwork-simulate")
    store = EventStore(nc, settings)
    await store.ensure_streams()
    appended = duplicates = failed = 0
    started = time.perf_counter()
    try:
        for n, (_day, events) in enumerate(generate(communities, days, seed, date.fromisoformat(start), households)):
            groups = by_aggregate(events)
            for i in range(0, len(groups), 2000):
                for result in await store.append_many(groups[i : i + 2000]):
                    if isinstance(result, Exception):
                        failed += 1
                    elif result.duplicate:
                        duplicates += result.last_seq - result.first_seq + 1
                    else:
                        appended += result.last_seq - result.first_seq + 1
            if progress:
                progress(n, days, appended)
    finally:
        await nc.close()
    seconds = time.perf_counter() - started
    return {"appended": appended, "duplicates": duplicates, "failed": failed, "seconds": seconds}


def cmd_simulate(args: argparse.Namespace) -> int:
    from datetime import date

    for name in ("communities", "days", "households"):
        if getattr(args, name) < 1:
            print(f"--{name}: must be at least 1", file=sys.stderr)
            return 2
    if args.start:
        try:
            date.fromisoformat(args.start)
        except ValueError:
            print(f"--start: {args.start!r} is not a day (YYYY-MM-DD)", file=sys.stderr)
            return 2
    if args.via == "api":
        return _simulate_via_api(args)
    import uvloop
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    settings = load_settings()
    start = args.start or "2025-01-01"
    with Progress(
        TextColumn("simulating"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("days"),
        TextColumn("{task.fields[events]:,} events"),
        TimeElapsedColumn(),
    ) as bar:
        task = bar.add_task("days", total=args.days + 1, events=0)

        def progress(n: int, _days: int, appended: int) -> None:
            bar.update(task, completed=min(n + 1, args.days + 1), events=appended)

        result = uvloop.run(
            simulate_into_store(settings, args.communities, args.days, args.seed, start, args.households, progress)
        )
    print(
        f"{result['appended']:,} events appended ({result['duplicates']:,} already there, "
        f"{result['failed']:,} refused) in {result['seconds']:.1f} s "
        f"({result['appended'] / max(result['seconds'], 1e-9):,.0f} events/s)"
    )
    return 0 if not result["failed"] else 1


def _simulate_via_api(args: argparse.Namespace) -> int:
    """``gridwork simulate --via api``: the same workload through the running stack's public APIs."""
    from datetime import date, timedelta

    import uvloop
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from services.simulator import WHAT, Tally, simulate_via_api

    from .events import now

    settings = load_settings()
    endpoints_file = settings.data_dir / "endpoints.json"
    if not endpoints_file.exists():
        print(f"--via api: no running stack ({endpoints_file} not found); start it with `gridwork up`", file=sys.stderr)
        return 2
    services = json.loads(endpoints_file.read_text())["services"]
    today = now().date()
    start = date.fromisoformat(args.start) if args.start else today - timedelta(days=args.days)
    oldest = today - timedelta(days=args.backdate_days - 1)
    if start < oldest:
        print(
            f"--start/--days: the visits API takes work at most {args.backdate_days} days back "
            f"(GRIDWORK_MAX_BACKDATE_DAYS; --backdate-days), so --via api plays days from {oldest} on; "
            f"asked to start on {start}",
            file=sys.stderr,
        )
        return 2
    if start + timedelta(days=args.days) > today + timedelta(days=1):
        print(f"--days: {args.days} days from {start} run past today ({today})", file=sys.stderr)
        return 2
    console = Console()
    with Progress(
        TextColumn("simulating via the APIs"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("days"),
        TextColumn("{task.fields[records]:,} records accepted"),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        task = bar.add_task("days", total=args.days + 1, records=0)

        def progress(n: int, _days: int, tally: Tally) -> None:
            bar.update(task, completed=min(n + 1, args.days + 1), records=tally.total("accepted"))

        result = uvloop.run(
            simulate_via_api(
                settings, services, args.communities, args.days, args.seed, start, args.households, progress
            )
        )
    tally: Tally = result["tally"]
    table = Table(title=f"{args.communities} communities × {args.days} days from {start}, seed {args.seed}")
    for col in ("requests", "accepted", "duplicate", "rejected"):
        table.add_column(col, justify="left" if col == "requests" else "right")
    for what in WHAT:
        c = tally.counts[what]
        table.add_row(what, f"{c['accepted']:,}", f"{c['duplicate']:,}", f"{c['rejected']:,}")
    console.print(table)
    play = result["play_seconds"]
    console.print(
        f"directory and ledger: {result['seed_events']:,} events in {result['seed_seconds']:.1f} s; "
        f"the days' work: {result['work_events']:,} events in {play:.1f} s "
        f"({result['work_events'] / max(play, 1e-9):,.0f} events/s through the APIs), "
        f"{tally.late:,} records synced days after the work; "
        f"projections caught up {result['settle_seconds']:.1f} s later"
    )
    for line in tally.rejections:
        console.print(f"rejected: {line}")
    return 0 if not tally.total("rejected") else 1


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
    token.add_argument("--agency")
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

    sim = commands.add_parser("simulate", help="a deterministic workload of N communities over D days")
    sim.add_argument("--communities", type=int, default=1)
    sim.add_argument("--days", type=int, default=30)
    sim.add_argument("--seed", type=int, default=1)
    sim.add_argument(
        "--start", help="first simulated day, YYYY-MM-DD (default: 2025-01-01; --via api: the days ending yesterday)"
    )
    sim.add_argument("--households", type=int, default=8000, help="households per community")
    sim.add_argument(
        "--via",
        choices=("store", "api"),
        default="store",
        help="store: append straight into the event store (large volumes); "
        "api: through the public HTTP APIs of the stack `gridwork up` runs (sync batches, issues, 12345 orders)",
    )
    sim.add_argument(
        "--backdate-days",
        type=int,
        default=30,
        help="--via api: how far back the stack's visits API takes work (its GRIDWORK_MAX_BACKDATE_DAYS)",
    )
    sim.set_defaults(handler=cmd_simulate)

    up = commands.add_parser("up", help="start NATS, PostgreSQL (unless configured) and the four services")
    up.add_argument("--data-dir", help="where the embedded servers keep their data (default ./.gridwork)")
    up.set_defaults(handler=cmd_up)


# ---------------------------------------------------------------------------- gridwork up

SERVICE_NAMES = ("visits", "issues", "scoring", "notify")


class LocalStack:
    """The embedded stack plus the four services as separate processes (``gridwork up``)."""

    def __init__(self, settings: Settings, services: tuple[str, ...] = SERVICE_NAMES) -> None:
        self.settings = settings
        self.services = services
        self.nats: NatsNode | None = None
        self.pg: EmbeddedPostgres | None = None
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.endpoints: dict[str, Any] = {}

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
        update: dict[str, Any] = {"nats_url": nats_url, "database_url": db_url}
        if passwords:
            update["nats_passwords"] = passwords  # this process (migrations, streams) is the admin
        self.settings = s = s.model_copy(update=update)
        asyncio.run(_prepare(s))
        env = {
            **{k: v for k, v in os.environ.items() if k != "GRIDWORK_NATS_PASSWORDS"},
            "GRIDWORK_NATS_URL": nats_url,
            "GRIDWORK_DATABASE_URL": db_url,
            "GRIDWORK_JWT_SECRET": s.jwt_secret,
            "GRIDWORK_DATA_DIR": str(data),
            "GRIDWORK_NAMESPACE": s.namespace,
            "GRIDWORK_HOST": s.host,
            "GRIDWORK_STREAM_REPLICAS": str(s.stream_replicas),
        }
        logs = data / "logs"
        logs.mkdir(exist_ok=True)
        urls = {}
        for name in self.services:
            port = int(getattr(s, f"{name}_port"))
            service_env = {**env, f"GRIDWORK_{name.upper()}_PORT": str(port)}
            if name in passwords:
                # each service process knows its own password only
                service_env.update(GRIDWORK_NATS_USER=name, GRIDWORK_NATS_PASSWORD=passwords[name])
            log = open(logs / f"{name}.log", "ab")
            self.procs[name] = subprocess.Popen(
                [sys.executable, "-m", f"services.{name}"],
                env=service_env,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
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

    def check(self) -> list[str]:
        """Names of services whose process has exited."""
        return [name for name, p in self.procs.items() if p.poll() is not None]

    def stop(self, echo: Callable[[str], None] = print) -> None:
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


async def _prepare(settings: Settings) -> None:
    """Migrations and streams, once, before the services start (as the NATS admin when there are users)."""
    from .db import create_pool, migrate
    from .eventstore import EventStore, connect

    nc = await connect(settings, "gridwork-up")
    try:
        await EventStore(nc, settings).ensure_streams()
    finally:
        await nc.close()
    pool = await create_pool(settings)
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
    finally:
        await pool.close()


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
        while not stop.wait(1.0):
            for name in stack.check():
                print(f"service {name} exited; see {stack.settings.data_dir / 'logs' / (name + '.log')}")
                stack.procs.pop(name, None)
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
