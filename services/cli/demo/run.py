"""The whole demo run: seed, play the month, the four cases, settle, read the results."""

from __future__ import annotations

import time
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from services.cli.workload import ZHONGNANLU
from services.notify.receiver import LocalReceiver, Received

from .accounts import demo_accounts, open_demo_accounts
from .cases import FourCases
from .community import COMMUNITY, SMS_TOKEN, WEBHOOK_SECRETS, WECOM_KEYS
from .month import Month
from .seeding import Seeding


class Demo(Seeding, Month, FourCases):
    """Seeds Bairuijing and plays the month against running services."""

    async def run(self) -> dict[str, Any]:
        started = time.perf_counter()
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=self.console) as progress:
            workload = self.workload()
            _, directory = next(workload)
            await self.seed_community(directory, progress)
            await self.play_month(workload, progress)
            cases = progress.add_task("the four cases, the hotline and the police", total=1)
            self.cases = await self.four_cases()
            progress.advance(cases)
            await self.open_accounts()
            settle = progress.add_task("projections catching up", total=1)
            await self.settle()
            progress.advance(settle)
        self.seconds = time.perf_counter() - started
        return await self.results()

    async def open_accounts(self) -> None:
        """The console's accounts of the people the demo played (printed with their passwords)."""
        worker = self.plan.workers[0]
        self.accounts = demo_accounts(ZHONGNANLU, worker.worker_id, worker.grid_id)
        await open_demo_accounts(self.settings, self.accounts)

    async def results(self) -> dict[str, Any]:
        sec = self.token("secretary")
        month = self.plan.days[-1]
        board = await self.call(
            "GET",
            "scoring",
            f"/v1/communities/{COMMUNITY}/board",
            headers=sec,
            params={"period": f"{month:%Y-%m}", "as_of": month.isoformat()},
        )
        figures = await self.call(
            "GET", "scoring", f"/v1/communities/{COMMUNITY}/figures", headers=sec, params={"year": month.year}
        )
        notifications = await self.call(
            "GET", "notify", f"/v1/communities/{COMMUNITY}/notifications", headers=sec, params={"limit": 1000}
        )
        issues = await self.call(
            "GET", "issues", f"/v1/communities/{COMMUNITY}/issues", headers=sec, params={"limit": 500}
        )
        return {
            "board": board,
            "figures": figures,
            "notifications": notifications,
            "issues": issues,
            "received": list(self.receiver.received),
            "cases": self.cases,
        }


class DemoReceiver(LocalReceiver):
    """The far end of every channel, plus the 12345 hotline's feedback endpoint."""

    def _route(self, method: str, target: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        if method == "POST" and target.startswith("/hotline"):
            return self._accept(Received("/hotline", {}, headers, body, time.perf_counter()), {"ok": True})
        return super()._route(method, target, headers, body)


def demo_receiver(port: int = 0) -> DemoReceiver:
    return DemoReceiver(
        port=port,
        webhook_secrets={k: [v] for k, v in WEBHOOK_SECRETS.items()},
        wecom_keys=set(WECOM_KEYS.values()),
        sms_token=SMS_TOKEN,
    )


def demo_environment(receiver_port: int) -> dict[str, str]:
    """What the demo's services are told: the local receivers, and a window wide enough to replay a month."""
    base = f"http://127.0.0.1:{receiver_port}"
    return {
        "GRIDWORK_MAX_BACKDATE_DAYS": "62",  # the demo replays last month's phones
        "GRIDWORK_HOTLINE_CALLBACK_URL": f"{base}/hotline",
        "GRIDWORK_NOTIFY_SMS_GATEWAY_URL": f"{base}/sms",
        "GRIDWORK_NOTIFY_SMS_GATEWAY_TOKEN": SMS_TOKEN,
        # Closing periods runs on the live clock; the demo writes last month all at once, so it
        # would close each day before its work arrives.  The board shows the month as folded.
        "GRIDWORK_SCORING_CLOSE_INTERVAL_SECONDS": "0",
    }
