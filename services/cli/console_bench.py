"""``gridwork bench console``: the console's pages under many signed-in people, and how fast an
event reaches an open page — each beside its baseline measured in the same run.

It starts a throwaway `gridwork up` (five service processes, embedded NATS and PostgreSQL in a
temp dir), seeds it with the demo's Bairuijing for a month, and then measures:

* pages: ``people`` signed-in secretaries (each a session of their own) fetch the month's board and
  Today concurrently; the baseline is the same people fetching the board's JSON straight from the
  scoring service with a token (what the board page itself asks for);
* live: a page open on Today in headless Chromium, and a worker's shift started or ended through
  the visits API: the time until the page shows it, without a reload; the baseline is the time
  until the services have folded the event (their ``/readyz`` lag is zero), the earliest any page
  could show it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from services.console.provisioning import add_accounts
from shared.auth import mint_token
from shared.events import now
from shared.events.console import Scope

from .benchkit import percentiles, report
from .demo import COMMUNITY, Demo, demo_environment, demo_receiver, demo_window
from .embedded import free_port
from .local import load_settings
from .stack import SERVICE_NAMES, LocalStack

CHROMIUM = os.environ.get("GRIDWORK_CHROMIUM", "/usr/bin/chromium")
HAVE_CHROMIUM = os.path.exists(CHROMIUM)


async def _signed_in(base: str, username: str, password: str) -> httpx.AsyncClient:
    client = httpx.AsyncClient(base_url=base, timeout=30)
    form = await client.get("/login")
    found = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert found, "the sign-in form has no CSRF token"
    answer = await client.post(
        "/login", data={"username": username, "password": password, "csrf": found.group(1), "next": "/"}
    )
    if answer.status_code != 303:
        raise RuntimeError(f"sign-in of {username} failed: {answer.status_code}")
    return client


async def _load(
    clients: list[httpx.AsyncClient], paths: list[str], rounds: int, headers: dict[str, str]
) -> dict[str, Any]:
    """Every client fetches each path ``rounds`` times, all clients at once: latencies and rate."""
    samples: list[float] = []
    failures = 0

    async def person(client: httpx.AsyncClient) -> None:
        nonlocal failures
        for _ in range(rounds):
            for path in paths:
                started = time.perf_counter()
                answer = await client.get(path, headers=headers)
                samples.append(time.perf_counter() - started)
                if answer.status_code != 200:
                    failures += 1

    started = time.perf_counter()
    await asyncio.gather(*(person(c) for c in clients))
    seconds = time.perf_counter() - started
    return {"requests": len(samples), "req_per_s": len(samples) / seconds, **percentiles(samples, (50, 95, 99)),
            "failed": failures}  # fmt: skip


async def _settled(client: httpx.AsyncClient, services: dict[str, str], started: float) -> float:
    """Seconds from ``started`` until visits and scoring have folded everything (what the live hub
    waits for before it tells the pages)."""
    while True:
        ready = [await client.get(f"{services[s]}/readyz") for s in ("visits", "scoring")]
        if all(not p.get("lag_events") for r in ready for p in r.json().get("projections", [])):
            return time.perf_counter() - started
        await asyncio.sleep(0.005)


async def _live(
    site: str, services: dict[str, str], settings: Any, demo: Demo, rounds: int
) -> dict[str, list[float]] | str:
    """Event → folded, and event → the open page showing it, ``rounds`` times."""
    if not HAVE_CHROMIUM:
        return f"no Chromium at {CHROMIUM}: the live part was skipped"
    from playwright.async_api import async_playwright

    worker = demo.plan.workers[-1]
    token = mint_token(
        settings, role="grid_worker", community=COMMUNITY, grid=worker.grid_id, worker_id=worker.worker_id
    )
    headers = {"Authorization": f"Bearer {token}"}
    folded: list[float] = []
    shown: list[float] = []
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"] if os.geteuid() == 0 else [])
        page = await (await browser.new_context(base_url=site)).new_page()
        await page.goto("/login")
        secretary = demo.accounts[0]  # the demo's community secretary
        await page.get_by_label("用户名").fill(secretary.username)
        await page.get_by_label("密码").fill(secretary.password)
        await page.get_by_role("button", name="登录").click()
        await page.wait_for_function("document.body.dataset.live === 'open'")
        region = page.locator("#shift")
        async with httpx.AsyncClient(timeout=30) as client:
            for i in range(rounds):
                shift = f"bench-{i // 2}"
                path = f"/shifts/{shift}/end" if i % 2 else "/shifts"
                body = {} if i % 2 else {"shift_id": shift}
                started = time.perf_counter()
                answer = await client.post(
                    f"{services['visits']}/v1/communities/{COMMUNITY}{path}", headers=headers, json=body
                )
                answer.raise_for_status()
                fold = asyncio.create_task(_settled(client, services, started))
                await region.get_by_text(worker.name).wait_for(state="detached" if i % 2 else "visible", timeout=10_000)
                shown.append(time.perf_counter() - started)
                folded.append(await fold)
        await browser.close()
    return {"folded": folded, "shown": shown}


async def bench_console(
    days: int, households: int, people: int, rounds: int, live_rounds: int
) -> tuple[list[dict[str, Any]], str]:
    """Run the benchmark on a throwaway stack; the report's rows and a note."""
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="gridwork-bench-console-") as tmp:
        port = free_port()
        saved = dict(os.environ)
        # every bench person signs in from this one address: the per-address limit is raised for the run
        os.environ.update(
            {
                **demo_environment(port),
                "GRIDWORK_LOG_LEVEL": "WARNING",
                "GRIDWORK_CONSOLE_SIGN_INS_PER_MINUTE": "100000",
            }
        )
        base = load_settings(use_running_stack=False, data_dir=Path(tmp))
        stack = LocalStack(base.model_copy(update={f"{name}_port": free_port() for name in SERVICE_NAMES}))
        receiver = demo_receiver(port)
        await receiver.start()
        try:
            endpoints = await asyncio.to_thread(stack.start, lambda _line: None)
            services = endpoints["services"]
            demo = Demo(stack.settings, services, receiver, demo_window(days, now().date()), households, seed=11)
            try:
                await demo.run()
            finally:
                await demo.close()
            scope = Scope(role="secretary", community=COMMUNITY)
            people_accounts = [(f"bench-{i:03d}", f"bench {i}", scope, "bench-password-1") for i in range(people)]
            await add_accounts(people_accounts, settings=stack.settings, one_time=False)
            clients = [
                await _signed_in(services["console"], f"bench-{i:03d}", "bench-password-1") for i in range(people)
            ]
            month = f"{demo.plan.days[-1]:%Y-%m}"
            token = mint_token(stack.settings, role="secretary", community=COMMUNITY)
            api = [httpx.AsyncClient(base_url=services["scoring"], timeout=30) for _ in range(people)]
            try:
                await _load(clients[:2], ["/board?period=month"], 2, {})  # warm both paths
                board_json = await _load(api, [f"/v1/communities/{COMMUNITY}/board?period={month}"], rounds,
                                         {"Authorization": f"Bearer {token}"})  # fmt: skip
                board_page = await _load(clients, [f"/board?period=month&day={demo.plan.days[-1]}"], rounds, {})
                today = await _load(clients, ["/today"], rounds, {})
            finally:
                for c in clients + api:
                    await c.aclose()
            rows.append({"what": "board JSON (scoring API, baseline)", **board_json})
            rows.append({"what": "board page (console)", **board_page})
            rows.append({"what": "Today page (console: 5 API calls in parallel)", **today})
            live = await _live(services["console"], services, stack.settings, demo, live_rounds)
            note = (
                f"{people} signed-in people, {rounds} rounds each; Bairuijing, {days} days, {households:,} households. "
                f"Board page p95 = {board_page['p95'] / board_json['p95']:.1f}× the JSON it renders."
            )
            if isinstance(live, str):
                note += " " + live
            else:
                rows.append({"what": "event → folded by the services (baseline)", "requests": len(live["folded"]),
                             **percentiles(live["folded"], (50, 95, 99))})  # fmt: skip
                rows.append({"what": "event → shown on the open page (live)", "requests": len(live["shown"]),
                             **percentiles(live["shown"], (50, 95, 99))})  # fmt: skip
        finally:
            await receiver.stop()
            await asyncio.to_thread(stack.stop, lambda _line: None)
            os.environ.clear()
            os.environ.update(saved)
    return rows, note


def register(bench: argparse._SubParsersAction) -> None:
    """Add ``gridwork bench console``."""
    b = bench.add_parser("console", help="pages under signed-in people beside their JSON; event → open page")
    b.add_argument("--days", type=int, default=30, help="days of Bairuijing played first (a month: a street-month)")
    b.add_argument("--households", type=int, default=4000)
    b.add_argument("--people", type=int, default=50, help="signed-in people browsing at once")
    b.add_argument("--rounds", type=int, default=10, help="pages each person fetches")
    b.add_argument("--live", type=int, default=40, help="events whose arrival on an open page is timed")
    b.set_defaults(handler=cmd_bench_console)


def cmd_bench_console(args: argparse.Namespace) -> int:
    """Run ``gridwork bench console`` and print its report."""
    import uvloop

    rows, note = uvloop.run(bench_console(args.days, args.households, args.people, args.rounds, args.live))
    report("gridwork bench console — pages under signed-in people, and live updates", rows, note)
    return 0
