"""What every part of the demo stands on: the API simulator's client, Bairuijing from the workload
generator, the plan and the receiver."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

from rich.console import Console

from services.cli.simulate import ApiSimulator
from services.cli.workload import bairuijing, generate_community, ledger_rows
from services.notify.receiver import LocalReceiver
from shared.events import Event
from shared.settings import Settings

from .community import COMMUNITY, MonthPlan, Worker, workers_of


class DemoBase(ApiSimulator):
    """The demo's state: the community, the plan and the receiver.  It plays the generated month as
    ``gridwork simulate --via api`` plays its days (the same requests, the same tally)."""

    def __init__(
        self,
        settings: Settings,
        services: dict[str, str],
        receiver: LocalReceiver,
        days: list[date],
        households: int,
        seed: int = 7,
        console: Console | None = None,
    ) -> None:
        super().__init__(settings, services, community=COMMUNITY)
        self.receiver = receiver
        self.console = console or Console()
        self.workload_seed = seed
        self.bairuijing = bairuijing(households, seed)
        self.plan = MonthPlan(days=days, workers=workers_of(self.bairuijing))
        buildings = {b.building_id: b for b in self.bairuijing.buildings}
        self.rows = ledger_rows(COMMUNITY, self.bairuijing.ledger, buildings)  # the ledger the secretary imports

    def workload(self) -> Iterator[tuple[date | None, list[Event]]]:
        """Bairuijing's directory, then each played day's work (phones that synced late included)."""
        days = self.plan.days
        return generate_community(self.bairuijing, len(days), self.workload_seed, days[0])

    # -------------------------------------------------------------------------- helpers

    def worker_token(self, w: Worker) -> dict[str, str]:
        return self.token("grid_worker", worker_id=w.worker_id, grid=w.grid_id, sub=w.worker_id)

    def refuse_rejections(self, what: str) -> None:
        """Fail loudly, as the demo's own calls do, when the services refused any of the played requests."""
        refused = self.tally.total("rejected")
        if refused:
            raise RuntimeError(f"{what}: {refused} requests refused: {'; '.join(self.tally.rejections[:5])}")
