"""The item formula, written once: how an item's folded numbers become its actual, met and points.

An item folds a numerator (a count, a sum, distinct values) and, for rates, a denominator.  From
them and the rulebook's figures:

* ``actual`` — the rate ``num / den`` (0 before any answer), else ``num / divisor`` (60: minutes → h);
* ``met``    — the period carries a target (a working day, or any longer period) and actual ≥ target;
* ``points`` — the item's points when met, else 0.

Two places need it: :meth:`Item.evaluate` in Python (a worker's progress, closing a period) and the
projection's ``quota_item`` table, whose generated columns compute it in PostgreSQL as the fold
adds evidence (without reading the row back).  Both come from :func:`item_formula`, run over a
small set of operations: :data:`NUMBERS` computes with floats; the projection renders the same
function into SQL text with its own operations (``projections.schema.SQL_OPERATIONS``).  One definition,
so the score a board shows and the explanation a worker reads cannot drift apart.
"""

from __future__ import annotations

from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class FormulaOperations(Protocol[T]):
    """What the formula is made of; ``T`` is a number (Python) or an expression (SQL)."""

    zero: T

    def ratio(self, num: T, den: T) -> T:
        """``num / den``, or zero when nothing was asked yet (``den`` is 0)."""

    def quotient(self, num: T, divisor: T) -> T:
        """``num / divisor`` (the divisor is positive: the rulebook checks it)."""

    def choose(self, condition: T, then: T, otherwise: T) -> T:
        """``then`` if ``condition`` holds, else ``otherwise``."""

    def reached(self, actual: T, target: T) -> T:
        """Whether there is a target (``None``/NULL: the period carries none) and ``actual`` reaches it."""


def item_formula(
    ops: FormulaOperations[T], *, num: T, den: T, divisor: T, rate: T, target: T, points: T
) -> tuple[T, T, T]:
    """``(actual, met, points earned)`` of one item in one period, in the terms of ``ops``."""
    actual = ops.choose(rate, ops.ratio(num, den), ops.quotient(num, divisor))
    met = ops.reached(actual, target)
    return actual, met, ops.choose(met, points, ops.zero)


class _Numbers:
    """The formula on Python numbers (both branches of a choice are computed: they are safe and cheap)."""

    zero = 0.0

    def ratio(self, num: Any, den: Any) -> Any:
        return num / den if den > 0 else 0.0

    def quotient(self, num: Any, divisor: Any) -> Any:
        return num / divisor

    def choose(self, condition: Any, then: Any, otherwise: Any) -> Any:
        return then if condition else otherwise

    def reached(self, actual: Any, target: Any) -> Any:
        return target is not None and actual >= target


#: :func:`item_formula` on numbers (:meth:`Item.evaluate`).
NUMBERS: FormulaOperations[Any] = _Numbers()
