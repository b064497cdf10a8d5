"""`gridwork` subcommands of the scoring service: ``bench scoring`` (run by :mod:`.bench`), ``scoring close``,
``scoring rulebooks``."""

from __future__ import annotations

import argparse
import asyncio
from datetime import date, datetime
from typing import Any

from shared.events import SHANGHAI


def register(commands: argparse._SubParsersAction, bench: argparse._SubParsersAction) -> None:
    """Add ``gridwork bench scoring`` and ``gridwork scoring close|rulebooks``."""
    b = bench.add_parser(
        "scoring",
        help="scoring: live fold and replay events/s beside the raw consume rate; board query p50/p99",
    )
    b.add_argument("--communities", type=int, default=20, help="communities in the street (default 20)")
    b.add_argument("--days", type=int, default=31, help="days of work to generate (default 31: a street-month)")
    b.add_argument(
        "--households", type=int, default=8000, help="households per community (default 8,000, as `gridwork simulate`)"
    )
    b.add_argument(
        "--workload",
        choices=("simulate",),
        default="simulate",
        help="kept for existing scripts: there is one workload generator, `gridwork simulate`'s",
    )
    b.add_argument(
        "--start", type=date.fromisoformat, default=None, help="first day (2025-10-01; 2025-01-01 with --street-year)"
    )
    b.add_argument("--queries", type=int, default=300, help="board queries per variant (default 300)")
    b.add_argument("--batch", type=int, default=10000, help="live fold batch size (the service's default: 10000)")
    b.add_argument(
        "--replay-batch",
        type=int,
        default=None,
        help="replay batch size (default: the projection's own, as `gridwork replay scoring` uses)",
    )
    b.add_argument(
        "--street-year",
        action="store_true",
        help="replay a street-year: `gridwork simulate`'s 20 communities × 365 days from 2025-01-01 "
        "(~2 million events; no live fold), target under 90 s",
    )
    b.add_argument("--no-live", action="store_true", help="skip the live fold (the replay folds from scratch)")
    b.add_argument("--repeat", type=int, default=1, help="replays of the same stream, with their median (default 1)")
    b.set_defaults(handler=cmd_bench)

    scoring = commands.add_parser("scoring", help="scoring service tools")
    sub = scoring.add_subparsers(dest="scoring_command", required=True, metavar="ACTION")
    close = sub.add_parser("close", help="close ended periods once (QuotaPeriodClosed, PointsAwarded)")
    close.add_argument("--now", type=datetime.fromisoformat, default=None, help="pretend it is this moment")
    close.set_defaults(handler=cmd_close)
    books = sub.add_parser("rulebooks", help="validate and list the rulebooks and each community's choice")
    books.set_defaults(handler=cmd_rulebooks)


def cmd_rulebooks(_args: argparse.Namespace) -> int:
    """``gridwork scoring rulebooks``: validate the rulebooks and list their items and each community's choice."""
    from rich.console import Console
    from rich.table import Table

    from .settings import ScoringSettings

    rules = ScoringSettings().rules()
    table = Table(title=f"rulebooks (default {rules.default.ref})")
    for col in ("rulebook", "period", "item", "target", "points", "evidence"):
        table.add_column(col)
    for book in rules.books.values():
        for item in book.items:
            evidence = ", ".join(e.event for e in item.evidence)
            table.add_row(
                book.ref, item.period, f"{item.id} {item.label_zh}", f"{item.target:g}", f"{item.points:g}", evidence
            )
    Console().print(table)
    for community, book in sorted(rules.assigned.items()):
        print(f"{community}: {book.ref}")
    return 0


def cmd_close(args: argparse.Namespace) -> int:
    """``gridwork scoring close [--now …]``: close ended periods once, as the service's closer would."""
    from services.cli.local import load_settings
    from shared.db import create_pool
    from shared.eventstore import EventStore, connect
    from shared.nats import patches

    from .bootstrap import ScoringDeps
    from .handlers import close_due_periods
    from .settings import scoring_settings

    now = args.now or datetime.now(SHANGHAI)
    if now.tzinfo is None:
        now = now.replace(tzinfo=SHANGHAI)

    async def run() -> Any:
        patches.install()
        settings = scoring_settings(load_settings())
        nc = await connect(settings, "gridwork-scoring-close")
        pool = await create_pool(settings)
        try:
            deps = ScoringDeps(
                settings=settings, rules=settings.rules(), clock=lambda: now, pool=pool, store=EventStore(nc, settings)
            )
            return await close_due_periods(now, deps=deps)
        finally:
            await nc.close()
            await pool.close()

    report = asyncio.run(run())
    print(
        f"closed {len(report.closed)}, corrected {len(report.corrected)}, awarded {len(report.awarded)}, "
        f"duplicates {report.duplicates}, unchanged {report.unchanged}"
    )
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    """``gridwork bench scoring``: see :mod:`.bench`."""
    from .bench import bench_scoring

    if args.street_year:
        args.communities, args.days, args.no_live = 20, 365, True
    start = args.start or (date(2025, 1, 1) if args.street_year else date(2025, 10, 1))
    run = bench_scoring(
        args.communities,
        args.days,
        start,
        args.queries,
        args.batch,
        households=args.households,
        replay_batch=args.replay_batch,
        live=not args.no_live,
        street_year=args.street_year,
        repeat=args.repeat,
    )
    try:  # the service runs on uvloop (shared.service.serve); measure it the same way
        import uvloop
    except ImportError:  # pragma: no cover - Windows
        asyncio.run(run)
    else:
        uvloop.run(run)
    return 0
