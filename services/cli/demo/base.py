"""What every part of the demo stands on: the API player plus the plan and the receiver."""

from __future__ import annotations

import random
from datetime import date
from typing import Any

from rich.console import Console

from services.cli.player import ApiPlayer
from services.notify.receiver import LocalReceiver
from shared.settings import Settings

from .community import COMMUNITY, Plan, Worker, build_community


class DemoBase(ApiPlayer):
    """The demo's state: the plan, the receiver and the randomness every part of it shares."""

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
        super().__init__(settings, services, COMMUNITY)
        self.receiver = receiver
        self.console = console or Console()
        self.seed = seed
        self.rng = random.Random(seed)
        workers, self.rows, tags = build_community(households, seed)
        self.plan = Plan(days=days, workers=workers, tags=tags)
        self.escalated: list[dict[str, Any]] = []

    # -------------------------------------------------------------------------- helpers

    def worker_token(self, w: Worker) -> dict[str, str]:
        return self.token("grid_worker", worker_id=w.worker_id, grid=w.grid_id, sub=w.worker_id)
