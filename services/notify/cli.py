"""`gridwork` subcommands contributed by the notify service: ``gridwork bench notify``."""

from __future__ import annotations

import argparse


def register(commands: argparse._SubParsersAction, bench: argparse._SubParsersAction) -> None:
    """Add this service's `gridwork bench notify` target."""
    del commands
    p = bench.add_parser(
        "notify",
        help="escalation-to-delivery latency (IssueEscalated appended → local receiver has it) beside raw appends",
    )
    p.add_argument("--escalations", type=int, default=600, help="paced escalations measured for latency")
    p.add_argument("--rate", type=float, default=100.0, help="paced escalations per second (open loop)")
    p.add_argument("--burst", type=int, default=1000, help="escalations appended at once for throughput")
    p.add_argument("--appends", type=int, default=300, help="one-at-a-time appends for the append latency baseline")
    p.set_defaults(handler=cmd_bench_notify)


def cmd_bench_notify(args: argparse.Namespace) -> int:
    """Run ``gridwork bench notify`` and print its report."""
    from services.cli.benchkit import report

    from .bench import bench_notify, run

    rows, note = run(bench_notify(args.escalations, args.rate, args.burst, args.appends))
    report("gridwork bench notify — escalation to delivery (signed webhook, local receiver)", rows, note)
    return 0
