"""The simulated market: one seeded price walk per symbol, and the tape of its prints.

Every listed symbol (see `assets`) follows a walk that reverts to the day's
open and never strays more than `max_move` from it. Each step prints one
trade at the new price; prints are recorded as bars of `bar_seconds` (a
minute, or the sandbox's shortened "minute"), which `history` serves and the
data stream sends: one series for both. Listeners hear every print as it
happens. Crypto pairs (`BTC/USD`) trade in fractions of a coin.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from alpaca_cli.sandbox import assets
from alpaca_cli.sandbox.calendar import NEW_YORK
from alpaca_cli.sandbox.model import CENT, ZERO, digest

log = logging.getLogger(__name__)

# A listener of prints: symbol, price, size, time.
PrintListener = Callable[[str, Decimal, Decimal, datetime], None]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_STOCK_SIZES = tuple(Decimal(n) for n in (100, 100, 100, 200, 300, 500, 1, 10, 50))
_CRYPTO_SIZES = tuple(Decimal(n) for n in ("0.001", "0.01", "0.01", "0.05", "0.1", "0.25", "0.5", "1", "0.002"))


@dataclass(slots=True)
class Minute:
    """The prints of one recorded bar so far (`pv`: price times volume, for the VWAP)."""

    o: Decimal
    h: Decimal
    lo: Decimal
    c: Decimal
    v: Decimal = ZERO
    n: int = 0
    pv: Decimal = ZERO

    def add(self, price: Decimal, size: Decimal) -> None:
        self.h = max(self.h, price)
        self.lo = min(self.lo, price)
        self.c = price
        self.v += size
        self.n += 1
        self.pv += price * size


@dataclass(slots=True)
class Ticker:
    """One symbol's walk and tape."""

    symbol: str
    rng: random.Random
    price: Decimal
    lastday_price: Decimal
    # The walk reverts to `anchor` (the day's open, or the last price set by hand).
    anchor: Decimal
    anchor_day: date | None = None
    crypto: bool = False  # trades around the clock, whatever the stock market's calendar
    walking: bool = False
    # Recorded bars by index (see `Market.bar_index`).
    minutes: dict[int, Minute] = field(default_factory=dict)
    last_print: tuple[Decimal, Decimal, datetime] | None = None  # price, size, time of the latest print


class Market:
    """The walks of every symbol asked about, seeded by `seed`."""

    def __init__(
        self,
        seed: int,
        *,
        volatility: float = 0.0008,
        reversion: float = 0.001,
        max_move: float = 0.04,
        bar_seconds: float = 60.0,
    ) -> None:
        self.seed = seed
        self.volatility = volatility
        # Per step, the walk gives back this share of its distance from the day's open...
        self.reversion = reversion
        # ...and never strays further than this fraction from it.
        self.max_move = max_move
        self.bar_seconds = bar_seconds
        # Bars are cut on whole microseconds from the epoch, so 0.1 s bars have no float drift.
        self._bar_micros = max(1, round(bar_seconds * 1_000_000))
        self.tickers: dict[str, Ticker] = {}
        self.listeners: list[PrintListener] = []

    def reset(self) -> None:
        """Forget every walk and its tape (listeners stay)."""
        self.tickers = {}

    def ticker(self, symbol: str) -> Ticker:
        """The symbol's walk, created at its seeded start price on first use."""
        found = self.tickers.get(symbol)
        if found is None:
            start = start_price(self.seed, symbol)
            listed = assets.find(symbol)
            found = Ticker(
                symbol=symbol,
                rng=random.Random(digest("walk", self.seed, symbol)),
                price=start,
                lastday_price=start,
                anchor=start,
                crypto=listed is not None and listed.asset_class == "crypto",
            )
            self.tickers[symbol] = found
        return found

    def symbols(self) -> list[str]:
        """Symbols that currently walk and print."""
        return [t.symbol for t in self.tickers.values() if t.walking]

    def bar_index(self, at: datetime) -> int:
        """The recorded bar holding `at`: bars of `bar_seconds` counted from the epoch."""
        return ((at - _EPOCH) // timedelta(microseconds=1)) // self._bar_micros

    def bar_start(self, index: int) -> datetime:
        return _EPOCH + timedelta(microseconds=index * self._bar_micros)

    def set_price(self, ticker: Ticker, price: Decimal, at: datetime) -> None:
        """Move to `price` at once: a print there, and the walk reverts to it from now on."""
        ticker.walking = True
        ticker.price = ticker.anchor = price.quantize(CENT)
        self.record(ticker, Decimal(100) if not ticker.crypto else Decimal(1), at)

    def walk(self, ticker: Ticker, at: datetime) -> None:
        """Move the price: a seeded step, pulled back toward the day's open, capped; then print."""
        rng = ticker.rng
        day = at.astimezone(NEW_YORK).date()
        if ticker.anchor_day != day:
            ticker.anchor, ticker.anchor_day = ticker.price, day
        if self.volatility:
            drift = math.log(float(ticker.price) / float(ticker.anchor)) * (1 - self.reversion)
            drift += rng.gauss(0.0, self.volatility)
            drift = max(-self.max_move, min(self.max_move, drift))
            new = (ticker.anchor * Decimal(repr(math.exp(drift)))).quantize(CENT)
            ticker.price = max(new, CENT)
        self.record(ticker, rng.choice(_CRYPTO_SIZES if ticker.crypto else _STOCK_SIZES), at)

    def record(self, ticker: Ticker, size: Decimal, at: datetime) -> None:
        """A print at the current price: into its bar, then to the listeners."""
        index = self.bar_index(at)
        p = ticker.price
        ticker.last_print = (p, size, at)
        bar = ticker.minutes.get(index)
        if bar is None:
            ticker.minutes[index] = Minute(p, p, p, p, size, 1, p * size)
        else:
            bar.add(p, size)
        for listener in list(self.listeners):
            try:
                listener(ticker.symbol, p, size, at)
            except Exception:
                log.exception("print listener failed")

    def late_print(self, ticker: Ticker, index: int, size: Decimal) -> bool:
        """A trade reported late into recorded bar `index`, at its close (an `updatedBars` case).

        The bar's volume, count and VWAP change; its prices and the live tape do
        not. False when the bar has no prints to correct.
        """
        bar = ticker.minutes.get(index)
        if bar is None:
            return False
        bar.add(bar.c, size)
        return True


def start_price(seed: int, symbol: str) -> Decimal:
    """Where a symbol's walk starts: near its listed reference price, within 5% by seed."""
    listed = assets.find(symbol)
    if listed is None:  # a made-up load-test symbol
        return Decimal(20 + digest("start", seed, symbol) % 48000 / 100).quantize(CENT)
    jitter = Decimal(digest("start", seed, symbol) % 2001 - 1000) / 20000
    return max(CENT, (listed.reference_price * (1 + jitter)).quantize(CENT))
