"""One symbol's working orders, kept by trigger price for matching.

A `Book` lets a step look only at the orders the new price can reach:
resting limits and stops sit in heaps keyed by their price, the rest
(market orders, triggered stops, trailing stops) in `active`.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from decimal import Decimal

from alpaca_cli.sandbox.market import Ticker
from alpaca_cli.sandbox.model import ZERO, SimOrder

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
