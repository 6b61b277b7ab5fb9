"""The market-data feed of the sandbox's data streams: what goes to which data connection.

The walk's prints become trade messages and quotes straddling them; at each
bar-interval boundary the bars the market recorded for the interval that ended
go to their subscribers (the series the bars API serves); the
`correct_bars_after` fault sends `updatedBars` corrections; `/admin/burst`
sends synthetic bars for load tests. Stocks go to the feeds (`/v2/iex`,
`/v2/sip`), crypto pairs to the crypto stream. The hub (`streams`) owns the
sockets and lends the feed its subscribers and a way to queue a message.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from alpaca_cli.sandbox import marketdata as md
from alpaca_cli.sandbox.model import Bar
from alpaca_cli.sandbox.wsconn import Conn

# At most this many finished intervals are sent at once (a clock moved far ahead sends the last ones).
_MAX_CATCH_UP = 1000


class DataFeed:
    """Market data for the data connections that `subscribers()` names, queued with `send`."""

    def __init__(
        self, sandbox: Any, subscribers: Callable[[], list[Conn]], send: Callable[[Conn, dict[str, Any]], None]
    ) -> None:
        self.sandbox = sandbox
        self._subscribers = subscribers
        self._send = send
        self.bursts = md.BurstBars()
        self._trade_ids = itertools.count(1)
        self._window: int | None = None  # the recorded bar under way at the last roll
        self.bars_sent = 0
        self.corrections_sent = 0  # updatedBars messages (the `correct_bars_after` fault)

    def register_symbols(self, conn: Conn) -> None:
        """Make the engine walk every newly subscribed symbol, so it prints and has bars."""
        assert conn.data is not None
        subs = conn.data.subscriptions
        for channel in ("trades", "quotes", "bars", "updatedBars"):
            for symbol in subs.symbols(channel):
                if symbol != "*":
                    self.sandbox.engine.price(symbol)

    def _price(self, symbol: str) -> float:
        return float(self.sandbox.engine.price(symbol))

    def _crypto(self, symbol: str) -> bool:
        """Is `symbol` a crypto pair (for the crypto stream) rather than a stock (for the feeds)?"""
        ticker = self.sandbox.engine.market.tickers.get(symbol)
        return ticker is not None and ticker.crypto

    def _wants(self, conn: Conn, channel: str, symbol: str) -> bool:
        """Does `conn` subscribe `symbol` on `channel` (a wildcard covers its own asset class only)?"""
        assert conn.data is not None
        return conn.data.subscriptions.wants(channel, symbol) and (conn.feed == md.CRYPTO_FEED) == self._crypto(symbol)

    def deliver_print(self, symbol: str, price: float, size: Decimal, when: datetime) -> None:
        """One print of the walk: a trade message, and a quote straddling it, to whoever subscribes."""
        trade: dict[str, Any] | None = None
        quote: dict[str, Any] | None = None
        crypto = self._crypto(symbol)
        for conn in self._subscribers():
            if self._wants(conn, "quotes", symbol):
                if quote is None:
                    quote = (
                        md.crypto_quote_message(symbol, price, when)
                        if crypto
                        else md.quote_message(symbol, price, when)
                    )
                self._send(conn, quote)
            if self._wants(conn, "trades", symbol):
                if trade is None:
                    trade_id = next(self._trade_ids)
                    if crypto:
                        taker = "B" if trade_id % 2 else "S"
                        trade = md.crypto_trade_message(symbol, price, float(size), when, trade_id, taker)
                    else:
                        trade = md.trade_message(symbol, price, int(size), when, trade_id)
                self._send(conn, trade)

    def _bar_symbols(self, conn: Conn | None = None) -> set[str]:
        """The symbols `conn` (or any subscriber) takes bars of, the wildcard expanded to the walking ones."""
        symbols: set[str] = set()
        for sub in [conn] if conn is not None else self._subscribers():
            symbols |= sub.data.subscriptions.symbols("bars")  # type: ignore[union-attr]
        if "*" in symbols:
            symbols.discard("*")
            symbols |= set(self.sandbox.engine.symbols())
        return symbols

    def roll(self, now: datetime) -> int:
        """Send the bars of every interval that ended since the last roll; returns how many went out.

        The bars are the engine's recorded ones (the series the bars API serves);
        an interval without prints has no bar, and a stock has none outside the session.
        """
        index = self.sandbox.engine.market.bar_index(now)
        if self._window is None or index < self._window:  # the first roll, or the clock moved back
            self._window = index
            return 0
        first = max(self._window, index - _MAX_CATCH_UP)
        self._window = index
        return sum(self._send_bars(past) for past in range(first, index))

    def _send_bars(self, index: int) -> int:
        engine = self.sandbox.engine
        stocks_trade = engine.is_open_at(engine.market.bar_start(index))
        made: dict[str, Bar | None] = {}
        delivered = 0
        for conn in self._subscribers():
            for symbol in sorted(self._bar_symbols(conn)):
                if not self._wants(conn, "bars", symbol) or not (stocks_trade or self._crypto(symbol)):
                    continue
                if symbol not in made:
                    made[symbol] = engine.recorded_bar(symbol, index)
                bar = made[symbol]
                if bar is not None:
                    self._send(conn, md.bar_of(symbol, bar))
                    self.bursts.sent(symbol, bar.t)
                    delivered += 1
        self.bars_sent += delivered
        corrected = [s for s, bar in made.items() if bar is not None]
        delay = self.sandbox.faults.correct_bars_after
        if delay is not None and corrected:
            asyncio.get_running_loop().call_later(delay, self._correct, index, corrected)
        return delivered

    def _correct(self, index: int, symbols: list[str]) -> None:
        """The `correct_bars_after` fault: a late print lands in bar `index`; `updatedBars` says so."""
        for symbol in symbols:
            bar = self.sandbox.engine.report_late(symbol, index)
            if bar is None:
                continue
            message = md.bar_of(symbol, bar, "u")
            for conn in self._subscribers():
                if self._wants(conn, "updatedBars", symbol):
                    self._send(conn, message)
                    self.corrections_sent += 1

    def _deliver_bars(self, bars: list[dict[str, Any]]) -> int:
        delivered = 0
        for conn in self._subscribers():
            mine = [b for b in bars if self._wants(conn, "bars", b["S"])]
            for bar in mine:
                self._send(conn, bar)
            delivered += len(mine)
        self.bars_sent += delivered
        return delivered

    async def bar_clock(self) -> None:
        """Send bars at every bar-interval boundary of the sandbox's clock."""
        while True:
            interval = self.sandbox.bar_interval
            now = self.sandbox.now()
            self.roll(now)
            boundary = md.interval_start(now, interval) + timedelta(seconds=interval)
            await asyncio.sleep(max(0.0, (boundary - self.sandbox.now()).total_seconds()))

    def burst(self, count: int, symbols: list[str] | None) -> dict[str, int]:
        """Send `count` synthetic bars now to the data subscribers (see `BurstBars.burst`)."""
        now = self.sandbox.now()
        self.roll(now)  # send a finished interval first so burst times stay ordered
        if not symbols:
            symbols = sorted(self._bar_symbols())
        bars = self.bursts.burst(symbols, count, self.sandbox.bar_interval, now, self._price)
        return {"bars": len(bars), "delivered": self._deliver_bars(bars)}
