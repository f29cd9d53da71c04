"""LiteLLM's durations (``30s``, ``30m``, ``30h``, ``30d``, ``1mo``): key lifetimes, budget periods.

A key's ``duration`` is a plain length: it expires that long after it was made. A budget's
``budget_duration`` is a period, and periods follow the calendar as LiteLLM's do (in UTC): ``1d``
resets at the next midnight, ``7d`` on the next Monday at midnight, ``30d`` and ``Nmo`` on the
first of a month at midnight. Other lengths reset on the next multiple of the length counted
from midnight (``6h``: at 00:00, 06:00, 12:00, 18:00; ``15m``: on the quarter hour) when they
divide a day evenly. The rest (``7h``, ``10d``) run back to back from the budget's first
period: each ends that long after the one before (the first starts when the budget is set, a
day count at midnight). Either way every instance computes the same reset instant, so gateways
applying a reset lazily agree on which period a request falls in, however late they apply it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

_PATTERN: Final = re.compile(r"^\s*(\d{1,6})\s*(s|m|h|d|mo)\s*$")
_SECONDS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86_400}
_DAY: Final = 86_400


@dataclass(frozen=True, slots=True)
class Duration:
    """A parsed duration: a number of `unit`s (``s``, ``m``, ``h``, ``d`` or ``mo``)."""

    count: int
    unit: str

    def __str__(self) -> str:
        return f"{self.count}{self.unit}"

    @property
    def seconds(self) -> int | None:
        """Its length in seconds (None for months, which have no one length)."""
        return None if self.unit == "mo" else self.count * _SECONDS[self.unit]


def parse_duration(text: str) -> Duration:
    """``30s``/``30m``/``30h``/``30d``/``1mo`` as a `Duration`; `ValueError` for anything else
    (zero included: a period must move time forward)."""
    match = _PATTERN.match(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(
            f"{text!r} is not a duration: use a whole number and s, m, h, d or mo "
            "(30s, 30m, 30h, 30d, 1mo)"
        )
    duration = Duration(int(match.group(1)), match.group(2))
    if duration.count == 0:
        raise ValueError(f"{text!r} is not a duration: it must be longer than zero")
    return duration


def expires_at(duration: Duration, now: datetime) -> datetime:
    """When a key made at `now` with this ``duration`` expires."""
    if duration.unit == "mo":
        return _add_months(now, duration.count)
    return now + timedelta(seconds=duration.count * _SECONDS[duration.unit])


def next_reset(duration: Duration, now: datetime, after: datetime | None = None) -> datetime:
    """The first reset instant of a budget period strictly after `now` (see the module doc);
    `after`: the reset instant that ended the previous period, which periods not aligned to the
    calendar continue from."""
    now = now.astimezone(UTC)
    if after is not None and not _aligned(duration) and after <= now:
        period = timedelta(seconds=_length(duration))
        return after + period * ((now - after) // period + 1)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if duration.unit == "mo":
        return _add_months(midnight.replace(day=1), duration.count)
    if duration.unit == "d":
        if duration.count == 1:
            return midnight + timedelta(days=1)
        if duration.count == 7:
            return midnight + timedelta(days=7 - midnight.weekday())
        if duration.count == 30:
            return _add_months(midnight.replace(day=1), 1)
        return midnight + timedelta(days=duration.count)
    length = _length(duration)
    if _DAY % length:
        return now + timedelta(seconds=length)
    elapsed = (now - midnight).total_seconds()
    return midnight + timedelta(seconds=(int(elapsed // length) + 1) * length)


def _length(duration: Duration) -> int:
    return duration.count * _SECONDS[duration.unit]


def _aligned(duration: Duration) -> bool:
    """Whether its resets fall on calendar boundaries, whatever the previous one was."""
    if duration.unit == "mo":
        return True
    if duration.unit == "d":
        return duration.count in (1, 7, 30)
    return _DAY % _length(duration) == 0


def _add_months(moment: datetime, months: int) -> datetime:
    """`moment` `months` calendar months later, its day clamped to the month's last day."""
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    day = min(moment.day, _days_in_month(year, month))
    return moment.replace(year=year, month=month, day=day)


def _days_in_month(year: int, month: int) -> int:
    following = datetime(year + month // 12, month % 12 + 1, 1)
    return (following - timedelta(days=1)).day
