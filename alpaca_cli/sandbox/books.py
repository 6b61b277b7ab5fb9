"""Where the engine keeps orders: by time for listing, by trigger price for matching.

`TimeIndex` answers `GET /v2/orders` pages in O(log n + page); a `Book` holds
one symbol's working orders so a step only looks at the orders the new price
can reach (resting limits and stops sit in heaps, the rest in `active`).
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from alpaca_cli.sandbox.market import Ticker
from alpaca_cli.sandbox.model import ZERO, SimOrder


class TimeIndex:
    """Orders sorted by submitted_at (unique per order), for O(log n + page) listing."""

    def __init__(self) -> None:
        self.keys: list[datetime] = []
        self.orders: list[SimOrder] = []

    def add(self, order: SimOrder) -> None:
        if not self.keys or order.submitted_at > self.keys[-1]:
            self.keys.append(order.submitted_at)
            self.orders.append(order)
            return
        i = bisect.bisect_left(self.keys, order.submitted_at)
        self.keys.insert(i, order.submitted_at)
        self.orders.insert(i, order)

    def remove(self, order: SimOrder) -> None:
        i = bisect.bisect_left(self.keys, order.submitted_at)
        if i < len(self.keys) and self.orders[i] is order:
            del self.keys[i]
            del self.orders[i]

    def __len__(self) -> int:
        return len(self.keys)

    def scan(self, after: datetime | None, until: datetime | None, descending: bool) -> Iterator[SimOrder]:
        lo = 0 if after is None else bisect.bisect_right(self.keys, after)
        hi = len(self.keys) if until is None else bisect.bisect_left(self.keys, until)
        indices = range(hi - 1, lo - 1, -1) if descending else range(lo, hi)
        orders = self.orders
        for i in indices:
            yield orders[i]


# Heap entries: (key, sequence, order); entries of orders that moved on are skipped when popped.
_Entry = tuple[Decimal, int, SimOrder]


@dataclass(slots=True)
class Book:
    """One symbol's working orders, and the market it trades on."""

    ticker: Ticker
    buy_limits: list[_Entry] = field(default_factory=list)
    sell_limits: list[_Entry] = field(default_factory=list)
    buy_stops: list[_Entry] = field(default_factory=list)
    sell_stops: list[_Entry] = field(default_factory=list)
    active: dict[str, SimOrder] = field(default_factory=dict)
    fresh: list[SimOrder] = field(default_factory=list)  # accepted since the last step
    pending_close: Decimal = ZERO  # unfilled qty of open orders closing the position

    @property
    def symbol(self) -> str:
        return self.ticker.symbol

    @property
    def price(self) -> Decimal:
        return self.ticker.price

    def park(self, order: SimOrder, seq: int) -> None:
        """Put a working order where the next steps will look at it."""
        order.in_active = False
        self.active.pop(order.id, None)
        immediate = order.time_in_force in ("ioc", "fok") or order.type == "market"
        if immediate or order.type == "trailing_stop" or (order.triggered and order.type == "stop"):
            self.activate(order)
        elif order.type == "limit" or order.triggered:
            assert order.limit_price is not None
            if order.side == "buy":
                heapq.heappush(self.buy_limits, (-order.limit_price, seq, order))
            else:
                heapq.heappush(self.sell_limits, (order.limit_price, seq, order))
        else:
            assert order.stop_price is not None
            if order.side == "buy":
                heapq.heappush(self.buy_stops, (order.stop_price, seq, order))
            else:
                heapq.heappush(self.sell_stops, (-order.stop_price, seq, order))

    def activate(self, order: SimOrder) -> None:
        order.in_active = True
        self.active[order.id] = order

    def reached(self) -> list[SimOrder]:
        """Wake the resting orders the current price reaches; returns the active ones, to work this step."""
        price = self.price
        while self.buy_limits and -self.buy_limits[0][0] >= price:
            self._wake(heapq.heappop(self.buy_limits)[2], trigger=False)
        while self.sell_limits and self.sell_limits[0][0] <= price:
            self._wake(heapq.heappop(self.sell_limits)[2], trigger=False)
        while self.buy_stops and self.buy_stops[0][0] <= price:
            self._wake(heapq.heappop(self.buy_stops)[2], trigger=True)
        while self.sell_stops and -self.sell_stops[0][0] >= price:
            self._wake(heapq.heappop(self.sell_stops)[2], trigger=True)
        return list(self.active.values())

    def drop(self, order: SimOrder) -> None:
        """Take an order out of the active set (it ended, or went back to a heap)."""
        self.active.pop(order.id, None)
        order.in_active = False

    def _wake(self, order: SimOrder, *, trigger: bool) -> None:
        if order.is_open and not order.in_active:
            if trigger:
                order.triggered = True
            self.activate(order)
