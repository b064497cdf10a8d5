"""Lookups in the directory read model, with a short per-process cache and the event store behind it.

The projection is eventually consistent: a household registered a moment ago may not be in it
yet.  When the projection has no row, the household's own stream in the event store decides, so
"unknown household" (404) is always the truth, not projection lag.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from typing import Any

import asyncpg

from shared.eventstore import EventStore

from .aggregates import HOUSEHOLD, definition
from .domain.households import HouseholdRef
from .projections import DIRECTORY


class Directory:
    """Where things are: households' grids and tags, buildings, workers, persons, communities' streets."""

    def __init__(self, pool: asyncpg.Pool, store: EventStore, ttl_seconds: float) -> None:
        self.pool = pool
        self.store = store
        self.ttl = ttl_seconds
        self._households: dict[tuple[str, str], tuple[float, HouseholdRef]] = {}
        # Versions this process wrote: a projection row older than that is stale (lag), so the
        # household's stream answers instead, and a tag set a moment ago already counts.
        self._written: dict[tuple[str, str], int] = {}

    def changed(self, community: str, household_id: str, version: int) -> None:
        """This process changed a household: drop it from the cache, remember the version."""
        self._households.pop((community, household_id), None)
        if len(self._written) > 100_000:
            self._written.clear()
        self._written[(community, household_id)] = version

    async def household(self, community: str, household_id: str) -> HouseholdRef | None:
        """One household, or None when it is not registered."""
        return (await self.households(community, [household_id])).get(household_id)

    async def households(self, community: str, household_ids: Iterable[str]) -> dict[str, HouseholdRef]:
        """Many households in one query; ids that are not registered are absent from the result."""
        now = time.monotonic()
        found: dict[str, HouseholdRef] = {}
        missing: list[str] = []
        for hid in dict.fromkeys(household_ids):
            hit = self._households.get((community, hid))
            if hit is not None and hit[0] > now:
                found[hid] = hit[1]
            else:
                missing.append(hid)
        if not missing:
            return found
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                f"SELECT household_id, building_id, grid_id, tags, erased, version FROM {DIRECTORY}.households "
                "WHERE community = $1 AND household_id = ANY($2::text[])",
                community,
                missing,
            )
        if len(self._households) > 200_000:
            self._households.clear()  # bound the memory; it refills from the next requests
        for r in rows:
            ref = HouseholdRef(
                r["household_id"], r["building_id"], r["grid_id"], frozenset(r["tags"]), r["erased"], r["version"]
            )
            if ref.version < self._written.get((community, ref.household_id), 0):
                continue  # the projection has not caught up with our own write yet
            self._written.pop((community, ref.household_id), None)
            found[ref.household_id] = ref
            self._households[(community, ref.household_id)] = (now + self.ttl, ref)
        absent = [hid for hid in missing if hid not in found]
        if absent:
            # Not in the projection (yet): each household's own stream is the truth.
            loaded = await asyncio.gather(*(self.store.load(HOUSEHOLD, community, hid) for hid in absent))
            for hid, one in zip(absent, loaded, strict=True):
                if one.state.registered:
                    s = one.state
                    found[hid] = HouseholdRef(hid, s.building_id, s.grid_id, frozenset(s.tags), s.erased, one.version)
        return found

    async def entry(self, community: str, kind: str, entry_id: str) -> dict[str, Any] | None:
        """A directory entry's latest definition, read from its own stream (always current)."""
        loaded = await self.store.load(definition(kind), community, entry_id)
        return loaded.state.data

    async def building(self, community: str, building_id: str) -> dict[str, Any] | None:
        """A building with its current grid (the projection's, which follows grid redraws)."""
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(
                f"SELECT building_id, grid_id, number, phase, compound FROM {DIRECTORY}.buildings "
                "WHERE community = $1 AND building_id = $2",
                community,
                building_id,
            )
        if row is not None:
            return dict(row)
        return await self.entry(community, "building", building_id)

    async def buildings(self, community: str, building_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Many buildings at once (the ledger import), the projection first, then their streams."""
        ids = list(dict.fromkeys(building_ids))
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                f"SELECT building_id, grid_id FROM {DIRECTORY}.buildings "
                "WHERE community = $1 AND building_id = ANY($2::text[])",
                community,
                ids,
            )
        found = {r["building_id"]: dict(r) for r in rows}
        for bid in ids:
            if bid not in found:
                data = await self.entry(community, "building", bid)
                if data is not None:
                    found[bid] = data
        return found

    async def worker_grid(self, community: str, worker_id: str) -> tuple[bool, str | None]:
        """(registered?, grid) of a worker."""
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(
                f"SELECT grid_id FROM {DIRECTORY}.workers WHERE community = $1 AND worker_id = $2",
                community,
                worker_id,
            )
        if row is not None:
            return True, row["grid_id"]
        data = await self.entry(community, "worker", worker_id)
        return (data is not None, data.get("grid_id") if data else None)

    async def person_roles(self, community: str, person_ids: Iterable[str]) -> dict[str, str]:
        """Role of each registered person among ``person_ids``."""
        ids = list(dict.fromkeys(person_ids))
        if not ids:
            return {}
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                f"SELECT person_id, role FROM {DIRECTORY}.persons WHERE community = $1 AND person_id = ANY($2)",
                community,
                ids,
            )
        roles = {r["person_id"]: r["role"] for r in rows}
        for pid in ids:
            if pid not in roles:
                data = await self.entry(community, "person", pid)
                if data is not None:
                    roles[pid] = data["role"]
        return roles

    async def street_of(self, community: str) -> str | None:
        """The street (街道) a community belongs to, from its CommunityRegistered."""
        async with self.pool.acquire() as conn:
            street = await conn.fetchval(f"SELECT street FROM {DIRECTORY}.communities WHERE community = $1", community)
        if street is None:
            data = await self.entry(community, "community", community)
            street = data.get("street") if data else None
        return street
