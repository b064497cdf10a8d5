"""``gridwork``: the one command line of the project.

Core commands live here (up, token, migrate, replay, bench append/fold/replay); each service adds
its own through ``services/<name>/cli.py:register``.  Every command is a small function that
builds the settings once and passes them down.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from services.console import cli as console_cli
from services.issues import cli as issues_cli
from services.notify import cli as notify_cli
from services.scoring import cli as scoring_cli
from services.visits import cli as visits_cli

from .catalog import OWNERS, PROJECTIONS


def build_parser() -> argparse.ArgumentParser:
    from services.cli import cluster, console_bench, demo, simulate, stack

    parser = argparse.ArgumentParser(prog="gridwork", description="The 5+1 grid work system.")
    commands_ = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    bench_parser = commands_.add_parser("bench", help="benchmarks: events/s and latency beside a naive baseline")
    bench = bench_parser.add_subparsers(dest="bench", required=True, metavar="TARGET")
    stack.register(commands_, bench, PROJECTIONS)
    cluster.register(commands_, bench)
    console_bench.register(bench)
    demo.register(commands_)
    simulate.register(commands_)
    replay = commands_.add_parser("replay", help="rebuild a projection from the first event and swap it in")
    replay.add_argument("projection", help="projection name: " + ", ".join(sorted(PROJECTIONS)))
    replay.set_defaults(handler=cmd_replay)
    for module in (visits_cli, issues_cli, scoring_cli, notify_cli, console_cli):
        module.register(commands_, bench)
    return parser


def cmd_replay(args: argparse.Namespace) -> int:
    """Rebuild one projection from the first event, with a progress bar, then swap it in."""
    import asyncio

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from services.cli.catalog import migrate_services
    from services.cli.local import load_settings
    from shared.db import create_pool
    from shared.eventstore import EventStore, connect
    from shared.nats import patches
    from shared.projection import replay

    projection = PROJECTIONS.get(args.projection)
    if projection is None:
        print(f"unknown projection {args.projection!r}; known: {', '.join(sorted(PROJECTIONS)) or 'none'}")
        return 2

    async def run() -> dict[str, Any]:
        patches.install()
        settings = load_settings()
        nc = await connect(settings, "gridwork-replay")
        await migrate_services(settings)
        # as the role owning the projection: the rebuilt schema is the service's, like the live one
        pool = await create_pool(settings, service=OWNERS[projection.name])
        try:
            await EventStore(nc, settings).ensure_streams()
            with Progress(
                TextColumn(f"replaying {projection.name}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("stream seq"),
                TimeRemainingColumn(),
            ) as bar:
                task = bar.add_task("replay", total=None)

                def progress(done: int, target: int) -> None:
                    bar.update(task, completed=done, total=target)

                # A projection may ask for bigger replay transactions (scoring folds 10,000 at a time).
                batch = int(getattr(projection, "replay_batch", 5000))
                return await replay(projection, nc=nc, pool=pool, settings=settings, progress=progress, batch=batch)
        finally:
            await nc.close()
            await pool.close()

    result = asyncio.run(run())
    events, seconds = int(result["events"]), float(result["seconds"])
    print(
        f"{projection.name}: {events:,} events folded in {seconds:.1f} s "
        f"({events / max(seconds, 1e-9):,.0f} events/s); swapped into schema {result['schema']}"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int | None] = args.handler
    return int(handler(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
