"""LiteLLM's durations: parsing, key expiry, calendar-aligned budget resets (UTC)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from turnout.governance.periods import Duration, expires_at, next_reset, parse_duration


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[arg-type,misc]


@pytest.mark.parametrize(
    ("text", "count", "unit", "seconds"),
    [
        ("30s", 30, "s", 30),
        ("30m", 30, "m", 1800),
        ("30h", 30, "h", 108_000),
        ("30d", 30, "d", 2_592_000),
        ("1mo", 1, "mo", None),
        (" 7d ", 7, "d", 604_800),
    ],
)
def test_durations_parse(text: str, count: int, unit: str, seconds: int | None) -> None:
    duration = parse_duration(text)
    assert duration == Duration(count, unit)
    assert duration.seconds == seconds
    assert str(duration) == text.strip()


@pytest.mark.parametrize("bad", ["", "30", "d", "0d", "1w", "1.5h", "-1d", "30 days", "1mon"])
def test_what_is_not_a_duration_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


NOW = at(2026, 5, 13, 10, 30, 15)  # a Wednesday


@pytest.mark.parametrize(
    ("text", "reset"),
    [
        ("1d", at(2026, 5, 14)),
        ("7d", at(2026, 5, 18)),  # the next Monday
        ("30d", at(2026, 6, 1)),
        ("1mo", at(2026, 6, 1)),
        ("3mo", at(2026, 8, 1)),
        ("10d", at(2026, 5, 23)),
        ("6h", at(2026, 5, 13, 12)),
        ("1h", at(2026, 5, 13, 11)),
        ("15m", at(2026, 5, 13, 10, 45)),
        ("30s", at(2026, 5, 13, 10, 30, 30)),
        ("7h", at(2026, 5, 13, 17, 30, 15)),  # does not divide a day: from now
    ],
)
def test_resets_follow_the_calendar(text: str, reset: datetime) -> None:
    assert next_reset(parse_duration(text), NOW) == reset


def test_a_reset_is_strictly_after_now_even_on_a_boundary() -> None:
    assert next_reset(parse_duration("1d"), at(2026, 5, 14)) == at(2026, 5, 15)
    assert next_reset(parse_duration("7d"), at(2026, 5, 18)) == at(2026, 5, 25)
    assert next_reset(parse_duration("1mo"), at(2026, 12, 1)) == at(2027, 1, 1)


def test_instances_agree_on_the_reset_within_one_period() -> None:
    duration = parse_duration("6h")
    assert next_reset(duration, at(2026, 5, 13, 6, 0, 1)) == next_reset(
        duration, at(2026, 5, 13, 11, 59, 59)
    )


def test_key_durations_are_plain_lengths_with_months_clamped() -> None:
    assert expires_at(parse_duration("30m"), NOW) == at(2026, 5, 13, 11, 0, 15)
    assert expires_at(parse_duration("1mo"), at(2026, 1, 31, 8)) == at(2026, 2, 28, 8)
    assert expires_at(parse_duration("12mo"), at(2024, 2, 29)) == at(2025, 2, 28)


def test_unaligned_periods_continue_from_the_previous_reset_however_late() -> None:
    seven = parse_duration("7h")
    previous = at(2026, 5, 13, 3, 0)
    assert next_reset(seven, at(2026, 5, 13, 4), previous) == at(2026, 5, 13, 10)
    assert next_reset(seven, at(2026, 5, 14, 1), previous) == at(2026, 5, 14, 7)
    ten = parse_duration("10d")
    assert next_reset(ten, at(2026, 5, 25, 12), at(2026, 5, 23)) == at(2026, 6, 2)
    # Calendar periods ignore the previous instant: they are aligned already.
    assert next_reset(parse_duration("1d"), NOW, at(2026, 5, 1)) == at(2026, 5, 14)
