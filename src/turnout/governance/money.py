"""Money as integer micro-dollars: budgets, reservations and spend are added and compared exactly.

LiteLLM keeps spend as a float, and a float sum drifts (``Current cost: 25.000000000000004``): two
reservations that should exactly fill a budget may refuse the second, or let a third through.
turnout counts whole micro-dollars (one millionth of a US dollar) in integers everywhere inside,
and converts only at the edges: a budget written as ``10.5`` in a request or a config becomes
``10_500_000`` through `decimal.Decimal` of the number's shortest decimal form (so ``0.1`` is
exactly 100,000, not the binary float's 0.1000000000000000055...), and an amount goes back out
as the float LiteLLM's API returns.
"""

from __future__ import annotations

from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Final

#: Micro-dollars in a dollar.
MICROS_PER_DOLLAR: Final = 1_000_000
_SCALE: Final = Decimal(MICROS_PER_DOLLAR)


def to_micros(dollars: object, *, budget: bool = True) -> int:
    """`dollars` (an int, float, Decimal or numeric string) in micro-dollars.

    A budget (the default) rounds down below a whole micro-dollar, so that a limit never grows in
    conversion; an amount charged (``budget=False``) rounds to the nearest micro-dollar, halves
    to even. Raises `ValueError` for anything that is not a finite number at least zero (a
    bool is not a number here).
    """
    if isinstance(dollars, bool) or not isinstance(dollars, int | float | Decimal | str):
        raise ValueError(f"expected a number of dollars, got {type(dollars).__name__}")
    try:
        exact = Decimal(repr(dollars)) if isinstance(dollars, float) else Decimal(dollars)
    except InvalidOperation:
        raise ValueError(f"{dollars!r} is not a number of dollars") from None
    if not exact.is_finite():
        raise ValueError(f"{dollars!r} is not a finite number of dollars")
    if exact < 0:
        raise ValueError(f"{dollars!r} is negative; amounts of money are at least 0")
    rounding = ROUND_FLOOR if budget else ROUND_HALF_EVEN
    return int((exact * _SCALE).to_integral_value(rounding=rounding))


def to_dollars(micros: int) -> float:
    """`micros` as the float of dollars LiteLLM's API shows (the nearest float to the exact
    decimal, so it prints as that decimal: 10_500_000 -> 10.5)."""
    return float(to_decimal(micros))


def to_decimal(micros: int) -> Decimal:
    """`micros` as an exact `Decimal` of dollars."""
    return Decimal(micros) / _SCALE


def describe(micros: int) -> str:
    """`micros` as a dollar amount for messages: ``$10.5``, ``$0.000001``."""
    return f"${to_decimal(micros).normalize():f}"
