"""`gridwork` subcommands contributed by the issues service: ``bench issues``, ``issues-policy``."""

from __future__ import annotations

import argparse
import asyncio
import json


def cmd_bench(args: argparse.Namespace) -> int:
    """Report-to-escalation latency beside the raw append rate of the same run."""
    from .bench import run_bench

    result = asyncio.run(
        run_bench(sequential=args.sequential, burst=args.burst, concurrency=args.concurrency, raw=args.raw)
    )
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    return 0


def cmd_policy(_args: argparse.Namespace) -> int:
    """Validate and print the escalation policy and the category catalogue the service would load."""
    from rich.console import Console
    from rich.table import Table

    from .rules_files import load_catalogue, load_policy
    from .settings import IssuesSettings

    settings = IssuesSettings()
    policy = load_policy(settings.issues_escalation_file)
    catalogue = load_catalogue(settings.issues_catalogue_file)
    console = Console()
    rules = Table(title=f"escalation rules ({settings.issues_escalation_file})")
    for col in ("rule", "category", "subcategories", "severities", "night", "→ level", "→ target"):
        rules.add_column(col)
    for r in policy.rules:
        rules.add_row(
            r.name,
            r.category or "any",
            ", ".join(sorted(r.subcategories or [])) or "any",
            ", ".join(sorted(r.severities or [])) or "any",
            "" if r.night is None else str(r.night),
            r.to_level,
            r.target or "",
        )
    console.print(rules)
    deadlines = Table(title="deadlines per level (first match wins)")
    for col in ("category", "severities", "building", "compound", "community", "street"):
        deadlines.add_column(col)
    for d in policy.deadlines:
        deadlines.add_row(
            d.category or "any",
            ", ".join(sorted(d.severities or [])) or "any",
            *[str(d.per_level.get(lv, "")) for lv in ("building", "compound", "community", "street")],
        )
    console.print(deadlines)
    console.print(f"{len(catalogue.services())} Open311 services in {len(catalogue.categories)} categories")
    return 0


def register(commands: argparse._SubParsersAction, bench: argparse._SubParsersAction) -> None:
    """Add ``gridwork bench issues`` and ``gridwork issues-policy``."""
    b = bench.add_parser("issues", help="issues: report → rule escalation latency p50/p90/p99 beside raw appends")
    b.add_argument("--sequential", type=int, default=200, help="reports one at a time (default 200)")
    b.add_argument("--burst", type=int, default=1000, help="reports in the burst (default 1000)")
    b.add_argument("--concurrency", type=int, default=32, help="reports in flight during the burst (default 32)")
    b.add_argument("--raw", type=int, default=5000, help="events in the raw append baseline (default 5000)")
    b.add_argument("--json", action="store_true", help="also print the figures as JSON")
    b.set_defaults(handler=cmd_bench)
    policy = commands.add_parser("issues-policy", help="validate and show the escalation rules and deadlines")
    policy.set_defaults(handler=cmd_policy)
