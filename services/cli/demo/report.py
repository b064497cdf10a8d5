"""What the demo prints at the end: the board, the figures, the cases and where to look."""

from __future__ import annotations

from collections import Counter
from typing import Any

from rich.console import Console
from rich.table import Table

from .community import WECOM_KEYS, working_days
from .run import Demo

# ------------------------------------------------------------------------------------- output


def print_results(console: Console, demo: Demo, out: dict[str, Any], endpoints: dict[str, Any]) -> None:
    board = out["board"]
    table = Table(title=f"百瑞景社区 — 5+1 board {board['period'].get('key', '')} (评优积分制)")
    for col in ("rank", "worker", "grid", "attendance", "quota items met", "completion", "points"):
        table.add_column(col, justify="right" if col not in ("worker", "grid") else "left")
    for n, w in enumerate(board["workers"], start=1):
        completion = w.get("completion")
        table.add_row(
            str(w.get("rank", n)),
            f"{w['worker_id']} {w.get('name') or ''}",
            w.get("grid_id") or "",
            f"{w['attendance_days']}/{w['working_days']}",
            f"{w['items_met']}/{w['items_due']}",
            f"{completion:.0%}" if completion is not None else "—",
            f"{w['total']:.1f}",
        )
    console.print(table)
    fig = out["figures"]
    figures = Table(title=f"The community's figures, {fig['year']}")
    figures.add_column("figure")
    figures.add_column("value", justify="right")
    figures.add_column("target", justify="right")
    figures.add_row("resident visits (person-times)", f"{fig['visits']['value']:,}", f"{fig['visits']['target']:,}")
    ledger = fig["ledger"]
    figures.add_row(
        "ledger completion (居民基础信息底册)",
        f"{ledger['completion']:.1%} of {ledger['households']:,}" if ledger["completion"] is not None else "—",
        f"> {ledger['target']:.0%}",
    )
    figures.add_row("grid-worker trainings", str(fig["trainings"]["value"]), str(fig["trainings"]["target"]))
    survey = fig["survey"]
    for key, label in (
        ("visit_rate", "visit rate (走访率)"),
        ("awareness_rate", "awareness rate (知晓率)"),
        ("satisfaction_rate", "satisfaction rate (满意率)"),
    ):
        figures.add_row(
            label, f"{survey[key]:.1%}" if survey.get(key) is not None else "—", f"{survey['surveys']} surveys"
        )
    figures.add_row(
        "open problems",
        str(fig["open_problems"]["total"]),
        ", ".join(f"{k} {v}" for k, v in sorted(fig["open_problems"]["by_level"].items())),
    )
    console.print(figures)
    rules: Counter[tuple[str, str, str]] = Counter()
    for n in out["notifications"]["notifications"]:
        rules[(n["rule"] or n["kind"], n["recipient_id"], n["state"])] += 1
    routed = Table(title="Notifications by routing rule (notify)")
    for col in ("rule", "recipient", "state", "count"):
        routed.add_column(col, justify="right" if col == "count" else "left")
    for (rule, recipient, state), count in sorted(rules.items()):
        routed.add_row(rule, recipient, state, str(count))
    console.print(routed)
    by_target: Counter[tuple[str, str]] = Counter()
    for r in out["received"]:
        by_target[(r.path.split("?")[0], r.query.get("key", ""))] += 1
    deliveries = Table(title="Escalations and where they went (received by the local endpoints)")
    deliveries.add_column("endpoint")
    deliveries.add_column("messages", justify="right")
    names = {v: k for k, v in WECOM_KEYS.items()}
    for (path, key), n in sorted(by_target.items()):
        deliveries.add_row(f"{path} {names.get(key, '')}".strip(), str(n))
    console.print(deliveries)
    cases = Table(title="The four cases")
    cases.add_column("case")
    cases.add_column("issue")
    for name, issue in out["cases"].items():
        cases.add_row(name, issue)
    console.print(cases)
    console.print(
        f"Played {len(demo.plan.days)} days ({len(working_days(demo.plan.days))} working days): "
        f"{demo.plan.visits:,} household contacts, {demo.plan.surveys} surveys, "
        f"{len(demo.rows):,} households imported, in {demo.seconds:.0f} s."
    )
    urls = Table(title="Running services")
    urls.add_column("service")
    urls.add_column("URL", overflow="fold")
    for name, url in endpoints["services"].items():
        urls.add_row(name, f"{url}/login" if name == "console" else f"{url}/docs")
    console.print(urls)
    console_url = endpoints["services"].get("console")
    if console_url:
        people = Table(title=f"Sign in to the console at {console_url}/login")
        people.add_column("who")
        people.add_column("username")
        people.add_column("password")
        for account in getattr(demo, "accounts", []):
            people.add_row(account.who, account.username, account.password)
        console.print(people)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.1%}" if value <= 1 else f"{value:,.1f}"
    return f"{value:,}" if isinstance(value, int) else str(value)
