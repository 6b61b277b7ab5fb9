"""Trades and quotes of the simulated tape, as the market-data REST routes serve them.

Pure: the engine records minute bars (and the latest print), not every print,
so historical trades are derived from each minute bar -- up to four prints at
its open, high, low and close, in a seeded order, their sizes summing to the
bar's volume -- and every trade has a quote straddling its price (the spread
of the streamed quotes: 2 basis points, at least a cent). The same bar always
gives the same prints, so answers are reproducible for a seed. Bars exist
only where the calendar has trading (extended hours included, as on IEX), so
trades and quotes do too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta
from decimal import ROUND_DOWN, Decimal
from typing import Any

from alpaca_cli.sandbox import pagetoken, wire
from alpaca_cli.sandbox.model import Bar
from alpaca_cli.sandbox.params import BadRequest

# The exchange code of IEX, the only venue the simulated tape trades on.
EXCHANGE = "V"
MAX_LIMIT = 10000

Print = tuple[datetime, float, Decimal]
MinuteBars = Callable[[str, datetime, datetime], Iterable[Bar]]


def _digest(*parts: object) -> int:
    text = ":".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "big")


def half_spread(price: float) -> float:
    """Half the quoted spread around `price`: 1 basis point, at least half a cent."""
    return max(0.005, round(price * 0.0001, 4))


def trade(symbol: str, at: datetime, price: float, size: Decimal, *, crypto: bool = False) -> dict[str, Any]:
    """A trade as `/v2/stocks/trades` (or, `crypto`, `/v1beta3/crypto/us/trades`) writes it.

    Ids are stable per symbol and time; a crypto trade names its taker's side instead of a venue.
    """
    trade_id = _digest("trade", symbol, at.timestamp()) % 2**52
    if crypto:
        taker = "B" if _digest("taker", symbol, at.timestamp()) % 2 else "S"
        return {"t": wire.ts(at), "p": price, "s": wire.volume(size), "i": trade_id, "tks": taker}
    return {
        "t": wire.ts(at),
        "x": EXCHANGE,
        "p": price,
        "s": wire.volume(size),
        "c": ["@"],
        "i": trade_id,
        "z": "C",
    }


def quote(symbol: str, at: datetime, price: float, *, crypto: bool = False) -> dict[str, Any]:
    """The top of book around a trade at `price`; bid < price < ask for every positive price."""
    half = half_spread(price)
    sizes = _digest("size", symbol, at.timestamp())
    if crypto:
        return {
            "t": wire.ts(at),
            "bp": round(price - half, 4),
            "bs": round(0.05 * (1 + sizes // 5 % 5), 4),
            "ap": round(price + half, 4),
            "as": round(0.05 * (1 + sizes % 5), 4),
        }
    return {
        "t": wire.ts(at),
        "ax": EXCHANGE,
        "ap": round(price + half, 4),
        "as": 1 + sizes % 5,
        "bx": EXCHANGE,
        "bp": round(price - half, 4),
        "bs": 1 + sizes // 5 % 5,
        "c": ["R"],
        "z": "C",
    }


def prints(symbol: str, bar: Bar, seconds: float = 60.0) -> list[Print]:
    """The prints a bar of `seconds` stands for: open first, close last, high and low between."""
    seed = _digest("prints", symbol, wire.bar_time(bar.t))
    middle = [bar.h, bar.l] if seed % 2 else [bar.l, bar.h]
    prices = [float(p) for p in (bar.o, *middle, bar.c)]
    if bar.v == bar.v.to_integral_value():
        share, rest = divmod(bar.v, 4)
    else:  # fractions of a coin: four equal parts to the nano, the rest on the close
        share = (bar.v / 4).quantize(Decimal("1e-9"), rounding=ROUND_DOWN)
        rest = bar.v - 4 * share
    sizes = [share, share, share, share + rest]
    offsets = (0.2, 15 + seed % 15, 30 + seed // 16 % 15, 59.5)
    scale = seconds / 60
    return [
        (bar.t + timedelta(seconds=offset * scale, microseconds=seed % 997 * scale), price, size)
        for offset, price, size in zip(offsets, prices, sizes, strict=True)
        if size > 0
    ]


def history(
    kind: str,
    symbols: Iterable[str],
    minute_bars: MinuteBars,
    start: datetime,
    end: datetime,
    limit: int,
    page_token: str | None,
    *,
    span: Callable[[datetime], float] | None = None,
    crypto: bool = False,
) -> dict[str, Any]:
    """`/v2/stocks/trades` or `/v2/stocks/quotes` (`kind` "trades"/"quotes"), paged like bars.

    `span`: how long the minute bar starting at a time lasts (the sandbox's bar interval since
    it started; None: a real minute); `crypto`: crypto shapes.

    Items come sorted by symbol, then time; `limit` counts them across all
    symbols of the page and `next_page_token` resumes at the first one left out.
    """
    if not 1 <= limit <= MAX_LIMIT:
        raise BadRequest(f"invalid limit: must be between 1 and {MAX_LIMIT}")
    if end < start:
        raise BadRequest("end should not be before start")
    resume = _resume(page_token) if page_token else None
    out: dict[str, list[dict[str, Any]]] = {}
    count = 0
    for symbol in sorted(set(symbols)):
        if resume is not None and symbol < resume[0]:
            continue
        first = start
        if resume is not None and symbol == resume[0]:
            first = max(start, resume[1].replace(second=0, microsecond=0))
        for at, price, size in _prints_between(symbol, minute_bars, first, end, span or _real_minute):
            if resume is not None and symbol == resume[0] and at < resume[1]:
                continue
            if count >= limit:
                return {kind: out, "next_page_token": pagetoken.encode(symbol, at)}
            if kind == "trades":
                made = trade(symbol, at, price, size, crypto=crypto)
            else:
                made = quote(symbol, at, price, crypto=crypto)
            out.setdefault(symbol, []).append(made)
            count += 1
    return {kind: out, "next_page_token": None}


def _real_minute(t: datetime) -> float:
    return 60.0


def _prints_between(
    symbol: str, minute_bars: MinuteBars, start: datetime, end: datetime, span: Callable[[datetime], float]
) -> Iterator[Print]:
    for bar in minute_bars(symbol, start, end):
        for found in prints(symbol, bar, span(bar.t)):
            if start <= found[0] <= end:
                yield found


def _resume(token: str) -> tuple[str, datetime]:
    try:
        return pagetoken.decode(token)
    except ValueError:
        raise BadRequest("invalid page_token") from None
