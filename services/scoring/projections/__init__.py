"""The scoring read model: quotas per worker and period, standings, community figures.

One projection (schema ``proj_scoring``) folds everything scoring needs, so that one checkpoint
covers all of it and a replay rebuilds all of it:

* ``quota_item``   — per worker, period and item: target, actual, met, points (and the
                     rulebook + version that scored it).  ``actual``/``met``/``points`` are
                     generated columns rendered from the domain's item formula
                     (``domain.formula.item_formula``), the one ``Item.evaluate`` runs.
* ``standing``     — the points evaluation (评优积分制) per worker, per day and per month:
                     attendance, reception-log entries, awards, quota points, items met.
                     Boards read a handful of rows per worker instead of summing items.
* ``figures``, ``ledger``, ``household``, ``issue``, ``training_seen`` — the community figures.
* ``community``, ``roster`` — community → street and worker → community, from the events.
* ``closure``      — the last closed revision of each worker-period (folded from scoring's own
                     ``QuotaPeriodClosed``, as ``domain.closing.evolve`` does), and ``changed_seq``
                     telling the closer which closed periods moved since (a late event) and need
                     a correction.

The fold is built for speed: each batch is decoded with a Rust JSON parser (only ``occurred_at``
and ``data``), aggregated in dictionaries, then written in ONE statement of data-modifying CTEs
(``FOLD``): item upserts, standings, figures, issues.  Old and new values of an item come back
from its upsert (``prev_*`` columns), so crossing a target moves the standings inside the same
statement without reading anything first.  Rare directory events (communities, workers,
households) and scoring's own closures take a few statements more.

* :mod:`.schema` — the tables, the staging tables and ``FOLD`` with its named parameters;
* :mod:`.batch`  — :class:`FoldBatch`: one batch aggregated in memory, then written;
* :mod:`.fold`   — :class:`ScoringProjection`, what the projection runner calls.
"""

from .batch import FoldBatch
from .fold import ScoringProjection
from .schema import BASE_EVENT_TYPES, SCHEMA

__all__ = ["BASE_EVENT_TYPES", "SCHEMA", "FoldBatch", "ScoringProjection"]
