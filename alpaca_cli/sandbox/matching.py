"""Matching: what a working order does when the market reaches it, and the fills it books.

Each step the engine hands a symbol's `Book` to `Matcher.match`: resting
orders the price reaches wake up, and every active order either fills (at
most `fill_chunk` shares a step, its whole size for fill-or-kill), expires
(IOC and FOK rests), or goes back to rest. Which order ends how is decided
here; the engine owns what an ending means (indexes, events, group orders)
and lends the matcher its hooks for it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from decimal import ROUND_DOWN, Decimal

from alpaca_cli.sandbox.account import Ledger
from alpaca_cli.sandbox.books import Book
from alpaca_cli.sandbox.calendar import NEW_YORK
from alpaca_cli.sandbox.model import CENT, ZERO, SimOrder

# The engine's hooks: end an order with a status; announce an event (fill details as keywords);
# an order filled (`done`: completely) so its group reacts.
Finish = Callable[[SimOrder, str, datetime], None]
Emit = Callable[..., None]
Filled = Callable[[SimOrder, bool, datetime], None]


def reference_cost(order: SimOrder, price: Decimal) -> Decimal:
    """What the unfilled rest of an opening order may cost at market `price`, for buying power."""
    if order.closing:
        return ZERO
    if order.notional is not None:
        return order.notional - order.filled_value
    ref = order.limit_price or order.stop_price or price
    if order.side == "sell":
        ref = max(ref, price)
    return order.remaining * ref


def trail_stop(order: SimOrder) -> Decimal:
    """A trailing stop's stop price: its high-water mark less the trail (plus, for buys)."""
    assert order.hwm is not None
    if order.trail_price is not None:
        offset = order.trail_price
    else:
        assert order.trail_percent is not None
        offset = order.hwm * order.trail_percent / 100
    stop = order.hwm - offset if order.side == "sell" else order.hwm + offset
    return max(stop.quantize(CENT), CENT)


def marketable(order: SimOrder, price: Decimal) -> bool:
    """Would the order trade at `price` (a stop reaching its price triggers on the way)?"""
    kind = order.type
    if kind in ("stop", "stop_limit", "trailing_stop") and not order.triggered:
        if kind == "trailing_stop" or order.stop_price is None:
            return False
        crossed = price >= order.stop_price if order.side == "buy" else price <= order.stop_price
        if not crossed:
            return False
        order.triggered = True
    if kind in ("market", "stop", "trailing_stop"):
        return True
    assert order.limit_price is not None
    return price <= order.limit_price if order.side == "buy" else price >= order.limit_price


class Matcher:
    """Works the active orders of a book against its price, booking fills in the ledger."""

    def __init__(
        self,
        ledger: Ledger,
        fill_chunk: Decimal,
        *,
        finish: Finish,
        emit: Emit,
        filled: Filled,
        park: Callable[[SimOrder, Book], None],
    ) -> None:
        self.ledger = ledger
        self.fill_chunk = fill_chunk
        self._finish = finish
        self._emit = emit
        self._filled = filled
        self._park = park

    def match(self, book: Book, at: datetime) -> None:
        for order in book.reached():
            if not order.is_open:  # ended meanwhile (its group's partner filled, say)
                book.drop(order)
                continue
            self._work(order, book, at)

    def _work(self, order: SimOrder, book: Book, at: datetime) -> None:
        price = book.price
        order.steps_seen += 1
        if order.steps_seen == 1 and self._unfunded(order, price):
            order.failed_at = at
            self._finish(order, "rejected", at)
            self._emit("rejected", order)
            return
        if order.type == "trailing_stop" and not order.triggered:
            assert order.hwm is not None
            order.hwm = max(order.hwm, price) if order.side == "sell" else min(order.hwm, price)
            order.stop_price = trail_stop(order)
            if (order.side == "sell" and price <= order.stop_price) or (
                order.side == "buy" and price >= order.stop_price
            ):
                order.triggered = True
        can_trade = marketable(order, price)
        room = self._unheld(order, book)
        tif = order.time_in_force
        if tif == "fok":
            wanted = self._wanted(order, price, chunked=False)
            if can_trade and (room is None or wanted <= room):
                self._fill(order, wanted, book, at)
            else:
                self._expire(order, at)
            return
        if can_trade:
            wanted = self._wanted(order, price, chunked=True)
            if room is None or min(wanted, room) > 0:
                self._fill(order, wanted if room is None else min(wanted, room), book, at)
        if tif == "ioc":
            if order.is_open:
                self._expire(order, at)
            return
        if order.is_open and not can_trade and order.type != "trailing_stop":
            self._park(order, book)  # back to its heap until the price returns

    def _unfunded(self, order: SimOrder, price: Decimal) -> bool:
        """Funds are re-checked when an opening order reaches the market: the price may have
        moved, or other fills used the buying power meanwhile."""
        if order.closing or order.filled_qty != 0:
            return False
        return reference_cost(order, price) > self.ledger.buying_power() + order.reserve

    def _unheld(self, order: SimOrder, book: Book) -> Decimal | None:
        """What an opening order may fill against a position it now reduces (None: no limit).

        An order placed while flat may meet a position opened after it; it must not
        take the shares held for that position's closing orders (exits, sells of the
        long), which would leave them holding more than there is.
        """
        if order.closing:
            return None
        pos = self.ledger.position_qty(order.symbol)
        held = book.pending_close
        reduces = (pos > 0 and order.side == "sell") or (pos < 0 and order.side == "buy")
        if not reduces or held <= 0:
            return None
        return max(ZERO, abs(pos) - held)

    def _wanted(self, order: SimOrder, price: Decimal, *, chunked: bool) -> Decimal:
        if order.notional is not None:
            rest = order.notional - order.filled_value
            return (rest / price).quantize(Decimal("1e-9"), rounding=ROUND_DOWN)
        rest = order.remaining
        return min(rest, self.fill_chunk) if chunked else rest

    def _fill(self, order: SimOrder, qty: Decimal, book: Book, at: datetime) -> None:
        if qty <= 0:
            self._expire(order, at)
            return
        price = book.price
        self.ledger.book_fill(order, qty, price, at.astimezone(NEW_YORK).date())
        order.filled_qty += qty
        order.filled_value += qty * price
        order.updated_at = at
        if order.holds:
            book.pending_close = max(ZERO, book.pending_close - qty)
        done = order.notional is not None or order.remaining <= 0
        if done:
            order.filled_at = at
            self._finish(order, "filled", at)
        else:
            order.status = "partially_filled"
            self.ledger.set_reserve(order, reference_cost(order, price))
        self._emit(
            "fill" if done else "partial_fill",
            order,
            execution_id=str(uuid.uuid4()),
            price=price,
            qty=qty,
            position_qty=self.ledger.position_qty(order.symbol),
        )
        self._filled(order, done, at)

    def _expire(self, order: SimOrder, at: datetime) -> None:
        order.expired_at = at
        self._finish(order, "expired", at)
        self._emit("expired", order)
