"""The scoring domain, pure (no I/O, no clock: the time comes with the command).

* :mod:`.calendar`  — periods (day, week due Friday, month, quarter, year), China's working days;
* :mod:`.rulebooks` — the 5+1 method as data: items, evidence, measures, targets and points;
* :mod:`.formula`   — the item formula (actual, met, points), the one source of every score;
* :mod:`.closing`   — closing a worker's ended period, and correcting it when late evidence arrives;
* :mod:`.awards`    — the secretary's publicity-and-awards entries.
"""

from .awards import AwardPoints, decide_award
from .closing import ClosePeriod, QuotaPeriod, decide, evolve
from .rulebooks import (
    Evaluation,
    Evidence,
    Figures,
    Item,
    ItemResult,
    PeriodScore,
    Rulebook,
    RulebookError,
    RuleSet,
    Source,
    compile_sources,
    parse_rulebook,
    score_period,
)

__all__ = [
    "AwardPoints",
    "ClosePeriod",
    "Evaluation",
    "Evidence",
    "Figures",
    "Item",
    "ItemResult",
    "PeriodScore",
    "QuotaPeriod",
    "RuleSet",
    "Rulebook",
    "RulebookError",
    "Source",
    "compile_sources",
    "decide",
    "decide_award",
    "evolve",
    "parse_rulebook",
    "score_period",
]
