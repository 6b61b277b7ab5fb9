"""The NYSE trading calendar the sandbox keeps: sessions, holidays, early closes.

Pure: no I/O and no clock of its own; every function takes the instant or
day it is asked about. The regular session is 9:30-16:00 New York time on
weekdays; the exchange's full holidays and 13:00 early closes are listed
below as NYSE Group published them for 2025-2027 (outside those years only
weekends close the market). Alpaca's extended hours run 4:00-20:00, with the
late session ending at 17:00 on early-close days.

`/v2/clock`, `/v2/calendar`, the matching engine (fills only while open, day
orders expiring at the close) and the bars (only inside sessions) all ask
this module, so they can never disagree.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

NEW_YORK = ZoneInfo("America/New_York")

REGULAR_OPEN = time(9, 30)
REGULAR_CLOSE = time(16, 0)
EARLY_CLOSE = time(13, 0)
EXTENDED_OPEN = time(4, 0)
EXTENDED_CLOSE = time(20, 0)
EARLY_EXTENDED_CLOSE = time(17, 0)

# The years whose holidays and early closes are listed below.
COVERED_YEARS = range(2025, 2028)

# NYSE Group's holiday calendar (announced 2024-11-08), plus the closing of
# 2025-01-09 for the national day of mourning for President Carter.
HOLIDAYS = frozenset(
    date.fromisoformat(d)
    for d in (
        # 2025
        "2025-01-01",
        "2025-01-09",
        "2025-01-20",
        "2025-02-17",
        "2025-04-18",
        "2025-05-26",
        "2025-06-19",
        "2025-07-04",
        "2025-09-01",
        "2025-11-27",
        "2025-12-25",
        # 2026 (Independence Day observed on Friday, July 3)
        "2026-01-01",
        "2026-01-19",
        "2026-02-16",
        "2026-04-03",
        "2026-05-25",
        "2026-06-19",
        "2026-07-03",
        "2026-09-07",
        "2026-11-26",
        "2026-12-25",
        # 2027 (Juneteenth, Independence Day and Christmas observed on weekdays)
        "2027-01-01",
        "2027-01-18",
        "2027-02-15",
        "2027-03-26",
        "2027-05-31",
        "2027-06-18",
        "2027-07-05",
        "2027-09-06",
        "2027-11-25",
        "2027-12-24",
    )
)

# Days the regular session ends at 13:00 (and the late session at 17:00).
EARLY_CLOSES = frozenset(
    date.fromisoformat(d)
    for d in (
        "2025-07-03",
        "2025-11-28",
        "2025-12-24",
        "2026-11-27",
        "2026-12-24",
        "2027-11-26",
    )
)


@dataclass(frozen=True, slots=True)
class Session:
    """One trading day: its regular and extended hours (aware New York datetimes)."""

    day: date
    open: datetime
    close: datetime
    extended_open: datetime
    extended_close: datetime

    @property
    def early_close(self) -> bool:
        return self.day in EARLY_CLOSES


def is_trading_day(day: date) -> bool:
    return day.weekday() < 5 and day not in HOLIDAYS


def session(day: date) -> Session | None:
    """The session of `day`, or None when the market does not open that day."""
    if not is_trading_day(day):
        return None
    early = day in EARLY_CLOSES
    return Session(
        day=day,
        open=datetime.combine(day, REGULAR_OPEN, NEW_YORK),
        close=datetime.combine(day, EARLY_CLOSE if early else REGULAR_CLOSE, NEW_YORK),
        extended_open=datetime.combine(day, EXTENDED_OPEN, NEW_YORK),
        extended_close=datetime.combine(day, EARLY_EXTENDED_CLOSE if early else EXTENDED_CLOSE, NEW_YORK),
    )


def sessions(start: date, end: date) -> Iterator[Session]:
    """Every session from `start` to `end`, both included."""
    day = start
    while day <= end:
        found = session(day)
        if found is not None:
            yield found
        day += timedelta(days=1)


def next_trading_day(day: date) -> date:
    """The first trading day strictly after `day`."""
    day += timedelta(days=1)
    while not is_trading_day(day):
        day += timedelta(days=1)
    return day


def settlement_date(day: date) -> date:
    """Trades of `day` settle T+1: on the next trading day."""
    return next_trading_day(day)


def local_day(at: datetime) -> date:
    return at.astimezone(NEW_YORK).date()


def is_open(at: datetime) -> bool:
    """Is the regular session under way at `at` (open included, close excluded)?"""
    today = session(local_day(at))
    return today is not None and today.open <= at < today.close


def in_extended_hours(at: datetime) -> bool:
    """Is `at` inside the day's 4:00-20:00 (17:00 on early closes) window?"""
    today = session(local_day(at))
    return today is not None and today.extended_open <= at < today.extended_close


def current_or_next_session(at: datetime) -> Session:
    """The session under way at `at`, else the next one to open."""
    today = session(local_day(at))
    if today is not None and at < today.close:
        return today
    found = session(next_trading_day(local_day(at)))
    assert found is not None
    return found


def next_open(at: datetime) -> datetime:
    """The first regular open strictly after `at`."""
    upcoming = current_or_next_session(at)
    if upcoming.open > at:
        return upcoming.open
    following = session(next_trading_day(upcoming.day))
    assert following is not None
    return following.open


def next_close(at: datetime) -> datetime:
    """The first regular close strictly after `at`."""
    return current_or_next_session(at).close
