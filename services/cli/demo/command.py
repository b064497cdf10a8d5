"""``gridwork demo``: start the stack, run the demo, print the report."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import sys
from datetime import date
from pathlib import Path
from typing import Any

from rich.console import Console

from services.cli.embedded import free_port
from services.cli.workload import BAIRUIJING_HOUSEHOLDS
from shared.events import now
from shared.settings import Settings

from .community import demo_window
from .report import print_results
from .run import Demo, DemoReceiver, demo_environment, demo_receiver


async def play(
    settings: Settings,
    endpoints: dict[str, Any],
    receiver: DemoReceiver,
    days: list[date],
    households: int,
    seed: int,
    console: Console,
) -> tuple[Demo, dict[str, Any]]:
    """Seed and play against a running stack (the receiver already listening)."""
    demo = Demo(settings, endpoints["services"], receiver, days, households, seed, console)
    try:
        return demo, await demo.run()
    finally:
        await demo.close()


async def _demo_main(stack: Any, port: int, args: argparse.Namespace, console: Console) -> None:
    import signal

    receiver = demo_receiver(port)
    await receiver.start()  # the far end of every channel lives as long as the demo does
    try:
        endpoints = await asyncio.to_thread(stack.start, console.print)
        days = demo_window(args.days, now().date())
        demo, out = await play(stack.settings, endpoints, receiver, days, args.households, args.seed, console)
        print_results(console, demo, out, endpoints)
        if args.svg:
            console.save_svg(args.svg, title="gridwork demo")  # what it printed, as a picture
            console.print(f"saved what the demo printed as {args.svg}")
        if args.headless:
            return
        console.print("The stack keeps running (the local receivers too); Ctrl-C stops it.")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
            stack.supervise(echo=console.print)  # a service that exits is started again
    finally:
        await receiver.stop()


def cmd_demo(args: argparse.Namespace) -> int:
    """Start the stack, seed Bairuijing, play the month, print the board; keep running until Ctrl-C."""
    import os

    import uvloop

    from services.cli.local import load_settings
    from services.cli.stack import LocalStack

    if args.households not in BAIRUIJING_HOUSEHOLDS:
        first, last = BAIRUIJING_HOUSEHOLDS[0], BAIRUIJING_HOUSEHOLDS[-1]
        print(f"--households: Bairuijing holds {first} to {last:,} households", file=sys.stderr)
        return 2
    if args.days is not None and args.days < 1:
        print("--days: must be at least 1", file=sys.stderr)
        return 2
    console = Console(record=bool(args.svg))
    data_dir = Path(args.data_dir or ".gridwork/demo")
    if data_dir.exists():
        shutil.rmtree(data_dir)  # the demo starts from an empty community every time
    port = free_port()
    os.environ.update(demo_environment(port))
    stack = LocalStack(load_settings(use_running_stack=False, data_dir=data_dir))
    try:
        uvloop.run(_demo_main(stack, port, args, console))
    finally:
        stack.stop(echo=console.print)
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    demo = commands.add_parser("demo", help="a month in Bairuijing on the embedded stack")
    demo.add_argument("--days", type=int, default=None, help="play the N days ending yesterday (default: last month)")
    demo.add_argument("--households", type=int, default=8000)
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--headless", action="store_true", help="stop after printing the board")
    demo.add_argument("--data-dir", help="default ./.gridwork/demo (wiped at start)")
    demo.add_argument("--svg", help="also save what the demo printed as an SVG picture (docs/demo.svg is one)")
    demo.set_defaults(handler=cmd_demo)
