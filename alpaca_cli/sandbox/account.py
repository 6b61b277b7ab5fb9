"""The paper account's money: cash, positions, what open orders hold, buying power.

A 2x margin account (Reg T style) by default: buying power is (equity -
initial margin) x multiplier, less what open orders hold back. Prices come
from the market through `price_of`; the engine decides what fills, this
module only books it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import Decimal

from alpaca_cli.sandbox.model import ZERO, Position, SimOrder


class Ledger:
    """Cash and positions of one account, and the buying power open orders reserve."""

    def __init__(self, cash: Decimal, multiplier: int, price_of: Callable[[str], Decimal]) -> None:
        self.cash = cash
        self.multiplier = multiplier
        self.price_of = price_of
        self.positions: dict[str, Position] = {}
        self.reserved = ZERO
        self.daytrade_count = 0
        # Equity at the previous close: the sandbox's account starts (and resets) all cash.
        self.last_equity = cash

    def position_qty(self, symbol: str) -> Decimal:
        pos = self.positions.get(symbol)
        return ZERO if pos is None else pos.qty

    def market_values(self) -> tuple[Decimal, Decimal]:
        """Long and short market value (the short one negative)."""
        long_mv = short_mv = ZERO
        for symbol, pos in self.positions.items():
            value = pos.qty * self.price_of(symbol)
            if value > 0:
                long_mv += value
            else:
                short_mv += value
        return long_mv, short_mv

    def margins(self, long_mv: Decimal, short_mv: Decimal) -> tuple[Decimal, Decimal]:
        """Initial and maintenance margin of the positions."""
        gross = long_mv - short_mv
        return gross / self.multiplier, gross * Decimal("0.3")

    def equity(self) -> Decimal:
        long_mv, short_mv = self.market_values()
        return self.cash + long_mv + short_mv

    def buying_power(self) -> Decimal:
        """Reg T style: (equity - initial margin) x multiplier, less what open orders hold."""
        long_mv, short_mv = self.market_values()
        equity = self.cash + long_mv + short_mv
        initial, _ = self.margins(long_mv, short_mv)
        return max(ZERO, (equity - initial) * self.multiplier - self.reserved)

    def set_reserve(self, order: SimOrder, amount: Decimal) -> None:
        """Hold `amount` of buying power for `order` (replacing what it held)."""
        self.reserved += amount - order.reserve
        order.reserve = amount

    def book_fill(self, order: SimOrder, qty: Decimal, price: Decimal, today: date) -> None:
        """Cash and position after `order` filled `qty` at `price`; counts a day trade once per order."""
        signed = qty if order.side == "buy" else -qty
        pos = self.positions.get(order.symbol)
        if pos is None:
            pos = self.positions[order.symbol] = Position()
        before = pos.qty
        _apply(pos, signed, price)
        self.cash -= signed * price
        if abs(pos.qty) > abs(before) or (before != 0 and pos.qty * before < 0):
            pos.opened_on = today
        elif pos.opened_on == today and not order.day_traded:
            order.day_traded = True
            self.daytrade_count += 1
        if pos.qty == 0:
            del self.positions[order.symbol]


def _apply(pos: Position, signed: Decimal, price: Decimal) -> None:
    """Signed qty at `price` into the position: average up, realize down, or flip through zero."""
    if pos.qty == 0 or (pos.qty > 0) == (signed > 0):
        pos.qty += signed
        pos.cost += signed * price
        return
    closing = min(abs(signed), abs(pos.qty))
    direction = 1 if pos.qty > 0 else -1
    pos.cost -= pos.avg_entry_price * closing * direction
    pos.qty += signed
    if pos.qty == 0:
        pos.cost = ZERO
    elif (pos.qty > 0) != (direction > 0):  # flipped through zero
        pos.cost = pos.qty * price
