"""Playing the month: each worker's day of 5+1 work, from the workload generator, synced as a phone
would and its problems reported through the issues API — as ``gridwork simulate --via api`` plays
it — and folded into the plan."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

from rich.progress import Progress

from shared.events import Event

from .base import DemoBase


class Month(DemoBase):
    """Plays the generated days: per day, every phone's sync batch, the problems reported and solved,
    the 12345 work orders."""

    async def play_month(self, workload: Iterator[tuple[date | None, list[Event]]], progress: Progress) -> None:
        days = self.plan.days
        task = progress.add_task(f"playing {days[0]:%Y-%m-%d} … {days[-1]:%Y-%m-%d}", total=len(days))
        for day, events in workload:
            if day is None:
                raise ValueError("the directory is seeded before the month is played")
            await self.play_day(day, events)
            self.refuse_rejections(f"the work synced on {day}")
            self.plan.fold(events)
            progress.update(task, completed=min(len(days), (day - days[0]).days + 1))
