"""The visits domain, pure: commands, aggregate states, ``decide`` and ``evolve`` (no I/O, no clock).

Aggregates that change over time and need optimistic concurrency:

* household (户): registered, profile completed, tagged, erased (PIPL) — :mod:`.households`;
* shift log: one per grid worker (aggregate id = worker id), so "an open shift can't start
  twice" is decided on one consistent stream — :mod:`.shifts`;
* volunteer account: one per household (aggregate id = household id), so a redemption can
  never spend more than the balance, even when two phones redeem at once — :mod:`.volunteer`;
* directory entries (community, grid, building, worker, person): the last definition wins,
  and re-sending the same definition changes nothing — :mod:`.definitions`.

Facts with their own id (a visit, a session, a council…) are new aggregates appended at
version 0; they need no state of their own, only the directory rows they name — :mod:`.work`.

Every command is a frozen dataclass named as an imperative and carries the time the work was
done (``at``): the application layer reads the clock, the domain never does.
"""
