"""Bracket, OCO and OTO orders: Alpaca's rules for their legs, apart from the engine.

Pure: given the entry order's terms and the `take_profit` / `stop_loss`
objects of the request, `plan` refuses what Alpaca refuses (with its
messages) and says which exit legs to create. The engine owns the orders:
bracket and OTO legs are `held` until the entry fills completely, then go
live; the two exits of a bracket, and the two orders of an OCO, cancel each
other (a partial fill of one shrinks the other to what is left); any order
of a group ending unfilled cancels the rest.

Rules, from Alpaca's "Orders at Alpaca" page and its error messages:
- bracket: entry plus `take_profit.limit_price` and `stop_loss.stop_price`
  (`stop_loss.limit_price` makes the stop a stop-limit); the entry must open
  a position ("bracket orders must be entry orders").
- oto: entry plus one of the two exits, otherwise as bracket.
- oco: exits only ("oco orders must be exit orders"), `type` "limit": the
  take-profit is the order itself, the stop-loss its one leg.
- all: `time_in_force` day or gtc, no extended hours, whole shares.
- stop price at least $0.01 beyond the base price (below it for sell exits,
  above for buy exits) and the take-profit limit at least $0.01 beyond it on
  the other side; the base price is the entry's limit price when it has one,
  else the market price; for OCO, the take-profit's limit price.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from alpaca_cli.sandbox.params import BadRequest

if TYPE_CHECKING:
    from alpaca_cli.sandbox.model import SimOrder

ORDER_CLASSES = frozenset({"simple", "bracket", "oco", "oto"})
CENT = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class Exit:
    """What a request asked of one exit: `take_profit` or `stop_loss`."""

    limit_price: Decimal | None = None
    stop_price: Decimal | None = None


@dataclass(frozen=True, slots=True)
class LegPlan:
    """One exit leg to create: its type and prices."""

    type: str
    limit_price: Decimal | None
    stop_price: Decimal | None
    holds_position: bool  # its qty counts as held for orders (one per OCO pair)


def _refuse(message: str, code: int = 40010001) -> BadRequest:
    return BadRequest(message, 422, code)


def order_class(value: object) -> str:
    """The request's `order_class` ("" and absent mean simple)."""
    if value is None or value == "":
        return "simple"
    if value not in ORDER_CLASSES:
        raise _refuse("invalid order_class")
    return str(value)


def check_entry(cls: str, *, kind: str, tif: str, extended: bool, fractional: bool, closing: bool) -> None:
    """The terms every order of a group shares, and entry versus exit."""
    if tif not in ("day", "gtc"):
        raise _refuse(f"{cls} orders must be DAY or GTC orders")
    if extended:
        raise _refuse(f"extended hours are not supported for {cls} orders")
    if fractional:
        raise _refuse(f"fractional orders are not supported for {cls} orders")
    if cls == "oco":
        if kind != "limit":
            raise _refuse("oco orders must be limit orders", 42210000)
        if not closing:
            raise _refuse("oco orders must be exit orders", 42210000)
    else:
        if kind == "trailing_stop":
            raise _refuse(f"trailing_stop orders cannot be {cls} orders")
        if closing:
            raise _refuse(f"{cls} orders must be entry orders", 42210000)


def plan(
    cls: str,
    *,
    side: str,
    entry_limit: Decimal | None,
    market_price: Decimal,
    take_profit: Exit | None,
    stop_loss: Exit | None,
) -> list[LegPlan]:
    """The legs of a bracket, OTO or OCO order (`side` is the entry's, or the OCO's own)."""
    if cls in ("bracket", "oco"):
        if take_profit is None or take_profit.limit_price is None:
            raise _refuse("take_profit.limit_price is required")
        if stop_loss is None or stop_loss.stop_price is None:
            raise _refuse("stop_loss.stop_price is required")
    elif take_profit is None and stop_loss is None:
        raise _refuse("oto orders require take_profit or stop_loss")
    if take_profit is not None and take_profit.limit_price is None:
        raise _refuse("take_profit.limit_price is required")
    if stop_loss is not None and stop_loss.stop_price is None:
        raise _refuse("stop_loss.stop_price is required")
    # Exits sell what a buy entry bought (and buy back what a sell entry sold); an OCO exits itself.
    exit_side = side if cls == "oco" else ("sell" if side == "buy" else "buy")
    bases = [market_price]
    if cls == "oco":
        assert take_profit is not None and take_profit.limit_price is not None
        bases.append(take_profit.limit_price)
    elif entry_limit is not None:
        bases = [entry_limit]
    if take_profit is not None and cls != "oco":
        _check_take_profit(exit_side, take_profit.limit_price, bases[0])
    if stop_loss is not None:
        for base in bases:
            _check_stop(exit_side, stop_loss.stop_price, base)
    legs: list[LegPlan] = []
    if take_profit is not None and cls != "oco":
        legs.append(LegPlan("limit", take_profit.limit_price, None, holds_position=True))
    if stop_loss is not None:
        kind = "stop" if stop_loss.limit_price is None else "stop_limit"
        legs.append(
            LegPlan(kind, stop_loss.limit_price, stop_loss.stop_price, holds_position=not legs and cls != "oco")
        )
    return legs


def _check_take_profit(exit_side: str, limit: Decimal | None, base: Decimal) -> None:
    assert limit is not None
    if exit_side == "sell" and limit < base + CENT:
        raise _refuse("take_profit.limit_price must be >= base_price + 0.01", 42210000)
    if exit_side == "buy" and limit > base - CENT:
        raise _refuse("take_profit.limit_price must be <= base_price - 0.01", 42210000)


def _check_stop(exit_side: str, stop: Decimal | None, base: Decimal) -> None:
    assert stop is not None
    if exit_side == "sell" and stop > base - CENT:
        raise _refuse("stop_loss.stop_price must be <= base_price - 0.01", 42210000)
    if exit_side == "buy" and stop < base + CENT:
        raise _refuse("stop_loss.stop_price must be >= base_price + 0.01", 42210000)


def take_place(old: SimOrder, new: SimOrder) -> None:
    """A replacement takes the replaced order's place in its bracket, OCO or OTO group."""
    new.order_class, new.parent, new.holds_position = old.order_class, old.parent, old.holds_position
    new.legs, old.legs = old.legs, []
    for leg in new.legs:
        leg.parent = new
    if old.parent is not None:
        siblings = old.parent.legs
        siblings[siblings.index(old)] = new
    if old.oco is not None:
        new.oco, old.oco.oco, old.oco = old.oco, new, None
