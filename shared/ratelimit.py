"""A sliding-window rate limit per key, in process memory (Open311 reports, console sign-ins)."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence


class RateLimit:
    """A sliding window of times per key: at most ``limit`` within ``seconds``.  Per process: with
    N processes a key gets N times the rate."""

    def __init__(self) -> None:
        self._seen: dict[str, deque[float]] = {}

    def admit(self, checks: Sequence[tuple[str, int, float]], now: float) -> int | None:
        """None when every ``(key, limit, seconds)`` admits one more now (and each is counted),
        else the seconds to wait (nothing is counted)."""
        waits = []
        for key, limit, seconds in checks:
            times = self._seen.setdefault(key, deque())
            while times and times[0] <= now - seconds:
                times.popleft()
            if len(times) >= limit:
                waits.append(max(1, int(times[0] + seconds - now) + 1))
        if waits:
            return max(waits)
        for key, _, _ in checks:
            self._seen[key].append(now)
        if len(self._seen) > 100_000:  # keys not seen for an hour: forget them
            self._seen = {k: v for k, v in self._seen.items() if v and v[-1] > now - 3600}
        return None
