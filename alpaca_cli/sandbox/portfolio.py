"""`GET /v2/account/portfolio/history`: the account's equity over a period.

Pure. The sandbox does not keep a time series of its equity, so the history
is flat: every point carries the account's equity now, measured against the
equity of the previous close (`base_value`, which is also the account's
`last_equity`), so the series always agrees with `GET /v2/account`. Points
follow the calendar: one per trading day for `1D`, and for intraday
timeframes one per interval of each session (4:00-20:00 with
`extended_hours`), none after now. The span is `period` back from `date_end`
(or today), or from `start` and/or to `end` (at most two of the three).
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from alpaca_cli.sandbox import calendar
from alpaca_cli.sandbox.calendar import NEW_YORK
from alpaca_cli.sandbox.params import BadRequest

TIMEFRAMES = {"1Min": 1, "5Min": 5, "15Min": 15, "1H": 60, "1D": 0}
_PERIOD = re.compile(r"^(\d+)([DWMA])$")
_UNIT_DAYS = {"D": 1, "W": 7, "M": 30, "A": 365}


def _period_days(period: str) -> int:
    match = _PERIOD.match(period)
    if not match or int(match.group(1)) < 1:
        raise BadRequest(f"invalid period: {period}")
    return int(match.group(1)) * _UNIT_DAYS[match.group(2)]


def _default_timeframe(days: int) -> str:
    """Alpaca's default: 1Min below 7 days, 15Min below 30, else 1D."""
    if days < 7:
        return "1Min"
    return "15Min" if days < 30 else "1D"


def _window(
    now: datetime,
    period: str | None,
    start: datetime | None,
    end: datetime | None,
    date_end: date | None,
) -> tuple[date, date, datetime, datetime]:
    """The days (New York) and instants the history covers: at most two of start, end, period."""
    if start is not None and end is not None and period:
        raise BadRequest("only two of start, end and period may be given")
    today = now.astimezone(NEW_YORK).date()
    finish = min(end or now, now)
    if start is not None:
        first = start.astimezone(NEW_YORK).date()
        through = first + timedelta(days=_period_days(period) - 1) if period else finish.astimezone(NEW_YORK).date()
        return first, min(today, through), start, finish
    last = min(date_end or finish.astimezone(NEW_YORK).date(), today)
    first = last - timedelta(days=_period_days(period or "1M") - 1)
    return first, last, datetime.combine(first, time(0), NEW_YORK), finish


def history(
    *,
    now: datetime,
    equity: Decimal,
    base_value: Decimal,
    period: str | None,
    timeframe: str | None,
    start: datetime | None = None,
    end: datetime | None = None,
    date_end: date | None = None,
    extended_hours: bool = False,
) -> dict[str, Any]:
    """The history object, every field of alpaca-py's `PortfolioHistory` (and `base_value_asof`)."""
    first, last, begin_at, end_at = _window(now, period, start, end, date_end)
    days = (last - first).days + 1
    frame = timeframe or _default_timeframe(days)
    if frame not in TIMEFRAMES:
        raise BadRequest(f"invalid timeframe: {frame}")
    if TIMEFRAMES[frame] and days > 30:
        raise BadRequest("intraday timeframes allow a period of at most 30 days")
    stamps: list[int] = []
    for session in calendar.sessions(first, last):
        if not TIMEFRAMES[frame]:
            stamps.append(int(datetime.combine(session.day, time(0), NEW_YORK).timestamp()))
            continue
        begin, finish = (
            (session.extended_open, session.extended_close) if extended_hours else (session.open, session.close)
        )
        step = timedelta(minutes=TIMEFRAMES[frame])
        at = begin
        while at < finish and at <= end_at:
            if at >= begin_at:
                stamps.append(int(at.timestamp()))
            at += step
    value = float(equity.quantize(Decimal("0.01")))
    base = float(base_value.quantize(Decimal("0.01")))
    profit = round(value - base, 2)
    ratio = round(profit / base, 6) if base else 0.0
    previous = calendar.sessions(first - timedelta(days=10), first - timedelta(days=1))
    asof = ([s.day for s in previous] or [first])[-1]
    return {
        "timestamp": stamps,
        "equity": [value] * len(stamps),
        "profit_loss": [profit] * len(stamps),
        "profit_loss_pct": [ratio] * len(stamps),
        "base_value": base,
        "base_value_asof": asof.isoformat(),
        "timeframe": frame,
        "cashflow": {},
    }
