"""What every ``gridwork bench …`` target shares: a stack to run on, timing, percentiles, reporting.

Benchmarks run on the servers named by ``GRIDWORK_NATS_URL`` / ``GRIDWORK_DATABASE_URL`` or, when
they are unset, on a throwaway embedded stack (real nats-server and PostgreSQL in a temp dir).
Each run uses its own namespace and database, so it never touches real data.

NATS users: the throwaway server has none, since a benchmark writes every context's events from
one connection, which on a server with users only the admin may; on configured servers it logs in
as the environment says (``GRIDWORK_NATS_USER``/``GRIDWORK_NATS_PASSWORD``: the admin).
"""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from shared.nats import patches
from shared.settings import Settings

from .embedded import EmbeddedNats, EmbeddedPostgres, create_database, free_port

console = Console(width=160)


@contextlib.asynccontextmanager
async def bench_stack(name: str = "bench", sync_interval: str = "2m") -> AsyncIterator[Settings]:
    """Settings on a fresh namespace and database, on the configured servers or an embedded stack."""
    patches.install()
    tag = f"b{secrets.token_hex(3)}"
    nats_url = os.environ.get("GRIDWORK_NATS_URL")
    db_url = os.environ.get("GRIDWORK_DATABASE_URL")
    nats: EmbeddedNats | None = None
    pg: EmbeddedPostgres | None = None
    with tempfile.TemporaryDirectory(prefix=f"gridwork-{name}-") as tmp:
        try:
            if not nats_url:
                nats = EmbeddedNats(
                    Path(tmp) / "nats", port=free_port(), monitor_port=free_port(), sync_interval=sync_interval
                ).start()
                nats_url = nats.url
            if not db_url:
                pg = EmbeddedPostgres(Path(tmp) / "pg").start()
                db_url = pg.url
            bench_db = await create_database(db_url, f"gw_{tag}")
            yield Settings(
                nats_url=nats_url,
                database_url=bench_db,
                namespace=tag,
                data_dir=Path(tmp),
                jwt_secret=secrets.token_hex(32),
                kek=base64.b64encode(secrets.token_bytes(32)).decode(),
                log_format="json",
                log_level="WARNING",
            )
        finally:
            if nats:
                nats.stop()
            if pg:
                pg.stop()


def percentiles(samples: Sequence[float], points: Sequence[float] = (50, 90, 99)) -> dict[str, float]:
    """Percentiles (nearest rank) of latency samples in seconds, returned in milliseconds."""
    if not samples:
        return {f"p{int(p)}": float("nan") for p in points}
    ordered = sorted(samples)
    out = {}
    for p in points:
        rank = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
        out[f"p{int(p)}"] = ordered[rank] * 1000
    return out


async def timed_runs(run: Callable[[int], Awaitable[int]], repeats: int = 3) -> dict[str, Any]:
    """Call ``run(i)`` (which returns the number of events it handled) ``repeats`` times.

    Returns the median events/s and every run's rate; the median resists a noisy neighbour.
    """
    rates = []
    for i in range(repeats):
        started = time.perf_counter()
        count = await run(i)
        rates.append(count / (time.perf_counter() - started))
    return {"events_per_s": statistics.median(rates), "runs": rates}


def report(title: str, rows: Sequence[dict[str, Any]], note: str | None = None) -> None:
    """Print a benchmark table: one row per measured variant (the baseline among them)."""
    columns: list[str] = []
    for row in rows:
        for key in row:
            if key not in columns:
                columns.append(key)
    table = Table(title=title)
    for col in columns:
        table.add_column(col, justify="left" if col in ("variant", "what") else "right")
    for row in rows:
        table.add_row(*[_fmt(row.get(col)) for col in columns])
    console.print(table)
    if note:
        console.print(note)


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.1f}" if value >= 10 else f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
