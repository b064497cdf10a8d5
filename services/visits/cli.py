"""`gridwork` subcommands contributed by the visits service: ``import``, ``keys`` and ``bench ingest``."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from shared.auth import Principal

from .settings import VisitsSettings


def cmd_import(args: argparse.Namespace) -> int:
    """Import a ledger sheet (CSV or XLSX) into a community; exit 2 when rows were rejected."""
    from services.cli.local import load_settings

    from .settings import visits_settings

    settings = visits_settings(load_settings())
    assert settings is not None
    path = Path(args.file)
    if not path.is_file():
        print(f"no such file: {path}", file=sys.stderr)
        return 1
    from .ledger import SheetTooLarge

    try:
        report = asyncio.run(_import(settings, path.read_bytes(), path.name, args.community, args.actor))
    except SheetTooLarge as err:
        print(f"{path} is refused: {err}", file=sys.stderr)
        return 1
    if args.json:
        print(report.model_dump_json(indent=2))
    else:
        from rich.console import Console
        from rich.table import Table

        console = Console()
        console.print(
            f"{path.name}: {report.rows} rows — [green]{report.registered} registered[/], "
            f"{report.updated} updated, {report.unchanged} unchanged, "
            f"[red]{len(report.rejected)} rejected[/]"
        )
        if report.rejected:
            table = Table("line", "field", "reason", title="rejected rows")
            for r in report.rejected:
                table.add_row(str(r.line), r.field or "", r.reason)
            console.print(table)
    return 2 if report.rejected else 0


async def _import(settings: VisitsSettings, content: bytes, filename: str, community: str, actor: str) -> Any:
    from shared.keywrap import require_kek
    from shared.service import open_runtime

    from .app import MIGRATIONS
    from .bootstrap import wire
    from .handlers import import_ledger
    from .ledger import parse_upload, sheet_limits
    from .projections import DirectoryProjection

    require_kek(settings)
    runtime = await open_runtime("visits-import", settings, [DirectoryProjection()], [MIGRATIONS])
    try:
        deps = wire(runtime.store, runtime.pool, settings)
        await deps.keys.check_keks()  # never wrap new keys under a KEK the service does not hold
        sheet = parse_upload(content, filename, sheet_limits(deps.settings))
        principal = Principal(sub=actor, role="secretary", community=community)
        return await import_ledger(community, sheet, principal, deps=deps)
    finally:
        await runtime.close()


def cmd_keys(args: argparse.Namespace) -> int:
    """``gridwork keys status | rewrap``: which KEK wraps the household keys; move them to the current one."""
    from services.cli.local import load_settings

    try:
        counts, report = asyncio.run(_keys(load_settings(), rewrap=args.action == "rewrap", batch=args.batch))
    except RuntimeError as err:
        print(f"gridwork keys: {err}", file=sys.stderr)
        return 1
    if report is not None:
        print(f"wrapped {report.wrapped_plain} plain keys and re-wrapped {report.rewrapped} keys under {report.kek_id}")
    for kek, n in counts.items():
        print(f"{n:>10}  {kek}")
    return 0


async def _keys(settings: Any, *, rewrap: bool, batch: int) -> tuple[dict[str, int], Any]:
    from shared.db import create_pool
    from shared.keywrap import keyring_from_settings
    from shared.vault import TextVault

    from .pii import KeyStore

    keyring = keyring_from_settings(settings)
    pool = await create_pool(settings, service="visits", max_size=2)
    try:
        keys = KeyStore(pool, keyring)
        vault = TextVault(pool, keyring)
        report = await keys.rewrap(batch=batch) if rewrap else None
        if rewrap:
            print(f"re-wrapped {await vault.rewrap()} of the vault's text keys (one per community)")
        async with pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT CASE WHEN erased_at IS NOT NULL THEN 'erased (no key)' WHEN key IS NOT NULL "
                "THEN 'plain (not yet wrapped)' ELSE kek_id END AS kek, count(*) AS n "
                "FROM visits_household_keys GROUP BY 1 ORDER BY 1"
            )
        counts = {(f"{r['kek']} (current)" if r["kek"] == keyring.key_id else r["kek"]): int(r["n"]) for r in rows}
        for kek, n in (await vault.kek_counts()).items():
            label = f"{kek} (current)" if kek == keyring.key_id else kek
            counts[f"{label}, vault text keys"] = n
        return counts, report
    finally:
        await pool.close()


def cmd_bench_ingest(args: argparse.Namespace) -> int:
    """HTTP ingest rates of the visits service beside the raw event-store append rate."""
    import uvloop

    from .bench import run_bench

    result = uvloop.run(
        run_bench(
            single=args.single,
            concurrency=args.concurrency,
            batches=args.batches,
            batch_size=args.batch_size,
            batch_concurrency=args.batch_concurrency,
            raw=args.raw,
            in_process=args.in_process,
            workers=args.workers,
            split=args.split,
        )
    )
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    return 0


def register(commands: argparse._SubParsersAction, bench: argparse._SubParsersAction) -> None:
    """Add ``gridwork import``, ``gridwork keys`` and ``gridwork bench ingest``."""
    from .ledger import COLUMNS

    columns = "; ".join(
        f"{col} ({' / '.join(a for a in aliases if not a.isascii())})" for col, aliases in COLUMNS.items()
    )
    imp = commands.add_parser(
        "import",
        help="import a community's resident ledger (CSV or XLSX)",
        description=(
            "Import the resident basic-information ledger (居民基础信息底册). Columns, English or "
            f"Chinese headers: {columns}. building is required; household_id defaults to "
            "building-unit-room. Re-importing the same file registers nothing twice."
        ),
    )
    imp.add_argument("file", help="ledger.csv (UTF-8 or GB18030) or ledger.xlsx")
    imp.add_argument("--community", required=True, help="community id, e.g. bairuijing")
    imp.add_argument("--actor", default="ledger-import", help="who imports (recorded as the events' actor)")
    imp.add_argument("--json", action="store_true", help="print the report as JSON")
    imp.set_defaults(handler=cmd_import)

    keys = commands.add_parser(
        "keys",
        help="household keys and the KEK that wraps them: status, rewrap",
        description=(
            "Residents' household keys are stored only wrapped by the key-encryption key "
            "(GRIDWORK_KEK_FILE). `status` counts the keys by the KEK that wraps them; `rewrap` wraps "
            "every key under the current KEK — those under a retired one (GRIDWORK_KEK_RETIRED_FILE) "
            "and any left plain — in batches, while the services run. Rotation: docs/OPERATIONS.md."
        ),
    )
    keys.add_argument("action", choices=["status", "rewrap"])
    keys.add_argument("--batch", type=int, default=500, help="keys per transaction (rewrap)")
    keys.set_defaults(handler=cmd_keys)

    ingest = bench.add_parser("ingest", help="visits HTTP ingest: single records and 500-record sync batches")
    ingest.add_argument("--single", type=int, default=6000, help="single-visit requests to send")
    ingest.add_argument("--concurrency", type=int, default=32, help="requests in flight (single records)")
    ingest.add_argument("--batches", type=int, default=40, help="500-record batches to send")
    ingest.add_argument("--batch-size", type=int, default=500)
    ingest.add_argument("--batch-concurrency", type=int, default=4, help="batches in flight")
    ingest.add_argument("--raw", type=int, default=20000, help="events for the raw append_many baseline")
    ingest.add_argument(
        "--in-process",
        action="store_true",
        help="serve the app in this process (httpx ASGI) instead of a uvicorn subprocess",
    )
    ingest.add_argument("--workers", type=int, default=1, help="server processes (uvicorn --workers)")
    ingest.add_argument(
        "--split",
        action="store_true",
        help="run the projections in a process of their own (GRIDWORK_VISITS_ROLE=api / projections)",
    )
    ingest.add_argument("--json", action="store_true", help="also print the figures as JSON")
    ingest.set_defaults(handler=cmd_bench_ingest)
