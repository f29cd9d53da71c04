"""Money in integer micro-dollars: exact from LiteLLM's floats and back."""

from __future__ import annotations

from decimal import Decimal

import pytest

from turnout.governance.money import describe, to_decimal, to_dollars, to_micros


@pytest.mark.parametrize(
    ("dollars", "micros"),
    [
        (10.5, 10_500_000),
        (0.1, 100_000),
        (0.3, 300_000),
        (1e-6, 1),
        (7, 7_000_000),
        ("2.25", 2_250_000),
        (Decimal("0.000001"), 1),
        (0, 0),
        (123456789.123456, 123_456_789_123_456),
    ],
)
def test_a_budget_converts_exactly(dollars: object, micros: int) -> None:
    assert to_micros(dollars) == micros


def test_float_sums_that_drift_do_not_drift_in_micros() -> None:
    # 0.1 + 0.2 != 0.3 in floats; in micro-dollars three tenths are three tenths.
    assert 0.1 + 0.2 != 0.3
    assert to_micros(0.1) + to_micros(0.2) == to_micros(0.3)


def test_a_budget_rounds_down_and_a_charge_rounds_to_nearest() -> None:
    assert to_micros(2e-7) == 0
    assert to_micros("0.0000019") == 1
    assert to_micros("0.0000019", budget=False) == 2
    assert to_micros("0.0000025", budget=False) == 2  # half to even
    assert to_micros("0.0000035", budget=False) == 4


@pytest.mark.parametrize("bad", [-1, -0.5, float("nan"), float("inf"), "ten", True, None, [1]])
def test_what_is_not_an_amount_is_refused(bad: object) -> None:
    with pytest.raises(ValueError, match=r"number|negative|finite|dollars"):
        to_micros(bad)


def test_amounts_go_back_out_as_the_decimal_they_are() -> None:
    assert to_dollars(10_500_000) == 10.5
    assert repr(to_dollars(100_000)) == "0.1"
    assert to_decimal(1) == Decimal("0.000001")
    assert describe(10_500_000) == "$10.5"
    assert describe(1) == "$0.000001"
    for micros in (0, 1, 99, 123_456_789, 10**15 + 1):
        assert to_micros(to_dollars(micros)) == micros
