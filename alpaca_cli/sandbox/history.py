"""Historical bars: what the market recorded since the sandbox started, a seeded curve before.

History before the market started is a deterministic curve ending at each
symbol's start price, so it joins the live walk without a jump; from then on
bars are made of the recorded prints (see `market`). A recorded "minute"
lasts the market's `bar_seconds`: with a shortened bar interval, `1Min` bars
since the start are those short bars and `1Hour` sixty of them, so the stream
and this history serve one series (and a gap test runs in seconds); before
the start, minutes are real minutes. Days, weeks and months follow New York's
calendar.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from alpaca_cli.sandbox import calendar, pagetoken
from alpaca_cli.sandbox.calendar import NEW_YORK
from alpaca_cli.sandbox.market import Market, Minute, Ticker
from alpaca_cli.sandbox.model import Bar, BarPage, digest, invalid

MAX_LIMIT = 10000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_TIMEFRAME_RE = re.compile(r"^(\d+)(Min|T|Hour|H|Day|D|Week|W|Month|M)$")
_UNITS = {
    "Min": "Min",
    "T": "Min",
    "Hour": "Hour",
    "H": "Hour",
    "Day": "Day",
    "D": "Day",
    "Week": "Week",
    "W": "Week",
    "Month": "Month",
    "M": "Month",
}
_WIDTHS = {"Min": 59, "Hour": 23, "Day": 1, "Week": 1, "Month": 12}


def parse_timeframe(text: str) -> tuple[int, str]:
    """`5Min` as (5, "Min"); Alpaca's short spellings (`5T`, `1H`, `1D`) too."""
    match = _TIMEFRAME_RE.match(text or "")
    if not match:
        raise invalid(f"invalid timeframe {text!r}")
    width, unit = int(match.group(1)), _UNITS[match.group(2)]
    if not 1 <= width <= _WIDTHS[unit]:
        raise invalid(f"invalid timeframe {text!r}")
    return width, unit


class History:
    """The bars of `market` between `created` (when its recording began) and `now()`."""

    def __init__(self, market: Market, created: datetime, now: Callable[[], datetime]) -> None:
        self.market = market
        self.created = created
        self.now = now
        # Where the recorded "minutes" (bars of the market's `bar_seconds`) begin: the
        # recorded bar holding `created`. Before it, minutes are real minutes.
        self.cut = market.bar_start(market.bar_index(created))

    def bars(
        self,
        symbols: Iterable[str],
        timeframe: str = "1Min",
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = 1000,
        page_token: str | None = None,
        *,
        always_open: bool = False,
    ) -> BarPage:
        """Bars sorted by symbol, then time; `limit` counts across symbols, the token resumes.

        Minutes and hours exist where the calendar trades (extended hours
        included), days on trading days; everything when `always_open`.
        """
        width, unit = parse_timeframe(timeframe)
        if not 1 <= limit <= MAX_LIMIT:
            raise invalid(f"invalid limit: must be between 1 and {MAX_LIMIT}")
        now = self.now()
        if start is not None and end is not None and end < start:
            raise invalid("end should not be before start")
        end = min(end or now, now)
        start = start or datetime.combine(now.astimezone(NEW_YORK).date(), time(0), NEW_YORK)
        names = sorted({s.strip().upper() for s in symbols if s.strip()})
        if not names:
            raise invalid("symbols is required")
        resume = _resume(page_token) if page_token else None
        out: dict[str, list[Bar]] = {}
        count = 0
        for symbol in names:
            if resume is not None and symbol < resume[0]:
                continue
            first = resume[1] if resume is not None and symbol == resume[0] else start
            ticker = self.market.ticker(symbol)
            around_the_clock = always_open or ticker.crypto
            for bucket in self._buckets(first, end, width, unit):
                if count >= limit:
                    return BarPage(out, pagetoken.encode(symbol, bucket))
                if not around_the_clock and not self._trades_during(bucket, width, unit):
                    continue
                finish = self._bucket_end(bucket, width, unit)
                if (unit == "Min" and width == 1) or unit not in ("Min", "Hour"):
                    made = self.bar(ticker, bucket, finish)
                else:
                    made = self._merged(ticker, bucket, finish, around_the_clock)
                if made is not None:
                    out.setdefault(symbol, []).append(made)
                    count += 1
        return BarPage(out, None)

    def latest_bar(self, symbol: str, *, always_open: bool = False) -> Bar | None:
        """The `1Min` bar of the latest "minute" with trading: recorded prints, else the curve's last.

        Outside the calendar's (extended) sessions, that is the last minute of
        the latest session; crypto and `always_open` trade in every minute.
        """
        ticker = self.market.ticker(symbol)
        if ticker.minutes:
            return self.recorded_bar(ticker, max(ticker.minutes))
        # Never printed since recording began: the curve's last minute before it.
        at = min(self.now(), self.created - timedelta(microseconds=1))
        if not (always_open or ticker.crypto):
            found = _last_trading_moment(at)
            if found is None:
                return None
            at = found
        begin = self._floor(at, 1, "Min")
        return self.bar(ticker, begin, self._bucket_end(begin, 1, "Min"))

    def recorded_bar(self, ticker: Ticker, index: int) -> Bar | None:
        """The `1Min` bar of recorded bar `index` (what the stream sends for that interval)."""
        begin = self.market.bar_start(index)
        return self.bar(ticker, begin, self.market.bar_start(index + 1))

    def bar(self, ticker: Ticker, begin: datetime, finish: datetime) -> Bar | None:
        """The bar from `begin` to `finish`: the curve before recording began, the prints after."""
        now = self.now()
        if begin >= now:
            return None
        if finish <= self.created:
            return self._synthetic_bar(ticker, begin, finish)
        merged: Minute | None = None
        if begin < self.created:
            syn = self._synthetic_bar(ticker, begin, self.created)
            merged = Minute(syn.o, syn.h, syn.l, syn.c, syn.v, syn.n, syn.vw * syn.v)
        minutes = ticker.minutes
        # Recorded bars starting in [begin, finish): the first index may start before `begin`
        # only when `begin` is not on a bar boundary, which bucket starts always are.
        first = self.market.bar_index(begin)
        last = self.market.bar_index(min(finish, now))
        if self.market.bar_start(last) >= finish:
            last -= 1
        span = range(first, last + 1)
        keys = span if len(span) <= len(minutes) else sorted(k for k in minutes if k in span)
        for index in keys:
            m = minutes.get(index)
            if m is None:
                continue
            if merged is None:
                merged = Minute(m.o, m.h, m.lo, m.c, m.v, m.n, m.pv)
                continue
            merged.h = max(merged.h, m.h)
            merged.lo = min(merged.lo, m.lo)
            merged.c = m.c
            merged.v += m.v
            merged.n += m.n
            merged.pv += m.pv
        if merged is None:
            return None
        vw = (merged.pv / merged.v).quantize(Decimal("0.0001")) if merged.v else merged.c
        return Bar(begin, merged.o, merged.h, merged.lo, merged.c, merged.v, merged.n, vw)

    def _merged(self, ticker: Ticker, begin: datetime, finish: datetime, around_the_clock: bool) -> Bar | None:
        """A bar of several "minutes" made of its `1Min` bars, so 5Min and 1Hour agree with 1Min exactly."""
        merged: Minute | None = None
        minute = self._floor(begin, 1, "Min")
        while minute < finish:
            following = self._bucket_end(minute, 1, "Min")
            part = None
            if around_the_clock or self._trades_during(minute, 1, "Min"):
                part = self.bar(ticker, minute, following)
            minute = following
            if part is None:
                continue
            if merged is None:
                merged = Minute(part.o, part.h, part.l, part.c, part.v, part.n, part.vw * part.v)
                continue
            merged.h = max(merged.h, part.h)
            merged.lo = min(merged.lo, part.l)
            merged.c = part.c
            merged.v += part.v
            merged.n += part.n
            merged.pv += part.vw * part.v
        if merged is None:
            return None
        vw = (merged.pv / merged.v).quantize(Decimal("0.0001")) if merged.v else merged.c
        return Bar(begin, merged.o, merged.h, merged.lo, merged.c, merged.v, merged.n, vw)

    # ------------------------------------------------------------ before recording

    def _synthetic_bar(self, ticker: Ticker, begin: datetime, finish: datetime) -> Bar:
        seed, symbol = self.market.seed, ticker.symbol
        o = self._curve(ticker, begin)
        c = self._curve(ticker, finish)
        minutes = max(1.0, (finish - begin).total_seconds() / 60)
        noise = (digest("bar", seed, symbol, begin.timestamp()) % 1000) / 1000
        spread = 0.0004 * math.sqrt(minutes) * (0.5 + noise)
        h = round(max(o, c) * (1 + spread), 2)
        lo = round(min(o, c) * (1 - spread), 2)
        shares = int(minutes * (500 + digest("vol", seed, symbol, begin) % 4500))
        trades = max(1, shares // 90)
        # A crypto pair trades fractions of a coin: a thousandth of a stock's volume.
        volume = (Decimal(shares) / 1000).quantize(Decimal("0.0001")) if ticker.crypto else Decimal(shares)
        vw = round((o + h + lo + c) / 4, 4)
        return Bar(begin, _dec(o), _dec(h), _dec(lo), _dec(c), volume, trades, _dec(vw))

    def _curve(self, ticker: Ticker, at: datetime) -> float:
        """Deterministic price history, anchored so it meets the start price at creation."""
        seed, symbol = self.market.seed, ticker.symbol
        base = float(ticker.lastday_price)
        phase = (digest("phase", seed, symbol) % 6283) / 1000

        def shape(t: float) -> float:
            m = t / 60
            wiggle = hash_noise(seed, symbol, int(m)) * 0.0015
            return 0.01 * math.sin(m / 62 + phase) + 0.04 * math.sin(m / 1500 + 2 * phase) + wiggle

        value = base * math.exp(shape(at.timestamp()) - shape(self.created.timestamp()))
        return round(max(value, 0.01), 2)

    # ------------------------------------------------------------------- buckets

    def _trades_during(self, bucket: datetime, width: int, unit: str) -> bool:
        """Has a bar starting at `bucket` any trading in it? Minutes and hours: extended hours."""
        if unit in ("Week", "Month"):
            return True
        day = calendar.session(calendar.local_day(bucket))
        if unit == "Day":
            return day is not None
        finish = self._bucket_end(bucket, width, unit)
        return day is not None and bucket < day.extended_close and finish > day.extended_open

    def span(self, t: datetime) -> float:
        """How long the `1Min` bar starting at `t` lasts, in seconds (see `cut`)."""
        if t >= self.cut:
            return self.market.bar_seconds
        return min(60.0, (self.cut - t).total_seconds())

    def _micros(self, width: int, unit: str, recorded: bool) -> int:
        """A minute or hour bucket's length in microseconds: recorded "minutes" last `bar_seconds`."""
        minute = self.market.bar_seconds if recorded else 60.0
        return max(1, round(width * minute * (1 if unit == "Min" else 60) * 1_000_000))

    def _grid(self, at: datetime, width: int, unit: str) -> tuple[datetime, datetime]:
        """The minute or hour bucket holding `at` on its grid (real minutes before `cut`, recorded after)."""
        recorded = at >= self.cut
        step = self._micros(width, unit, recorded)
        micros = (at - _EPOCH) // timedelta(microseconds=1)
        begin = _EPOCH + timedelta(microseconds=micros - micros % step)
        finish = begin + timedelta(microseconds=step)
        # A bucket never straddles `cut`: the one before ends there, the one after starts there.
        return (max(begin, self.cut), finish) if recorded else (begin, min(finish, self.cut))

    def _floor(self, at: datetime, width: int, unit: str) -> datetime:
        if unit in ("Min", "Hour"):
            return self._grid(at, width, unit)[0]
        local = at.astimezone(NEW_YORK)
        if unit == "Day":
            day = local.date()
        elif unit == "Week":
            day = local.date() - timedelta(days=local.weekday())
        else:
            month0 = (local.month - 1) // width * width
            day = date(local.year, month0 + 1, 1)
        return datetime.combine(day, time(0), NEW_YORK).astimezone(UTC)

    def _bucket_end(self, begin: datetime, width: int, unit: str) -> datetime:
        if unit in ("Min", "Hour"):
            return self._grid(begin, width, unit)[1]
        local = begin.astimezone(NEW_YORK)
        if unit == "Day":
            day = local.date() + timedelta(days=1)
        elif unit == "Week":
            day = local.date() + timedelta(days=7)
        else:
            months = local.month - 1 + width
            day = date(local.year + months // 12, months % 12 + 1, 1)
        return datetime.combine(day, time(0), NEW_YORK).astimezone(UTC)

    def _buckets(self, start: datetime, end: datetime, width: int, unit: str) -> Iterator[datetime]:
        """Bucket starts from the one holding `start` (if it begins at or after it) to `end`."""
        bucket = self._floor(start, width, unit)
        if bucket < start:
            bucket = self._bucket_end(bucket, width, unit)
        while bucket <= end:
            yield bucket
            bucket = self._bucket_end(bucket, width, unit)


def _last_trading_moment(at: datetime) -> datetime | None:
    """The latest moment at or before `at` inside a session's extended hours (a fortnight back at most)."""
    day = calendar.local_day(at)
    for back in range(15):
        session = calendar.session(day - timedelta(days=back))
        if session is None or session.extended_open > at:
            continue
        return min(at, session.extended_close - timedelta(microseconds=1))
    return None


def hash_noise(seed: int, symbol: str, n: int) -> float:
    """A deterministic value in [-1, 1) for (seed, symbol, n)."""
    return (digest("noise", seed, symbol, n) % 20000) / 10000 - 1


def _dec(value: float) -> Decimal:
    return Decimal(repr(value))


def _resume(token: str) -> tuple[str, datetime]:
    try:
        return pagetoken.decode(token)
    except ValueError:
        raise invalid("invalid page_token") from None
