"""`core.recover`: the one price of the shares filled between two cumulative looks, and the
events a poll rebuilds from two looks at an order."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from alpaca_cli.core import Ledger, State, fill_price_between, missed_part, polled_events
from alpaca_cli.core.recover import PRICE_PLACES
from alpaca_cli.domain import Order, TradeUpdate

NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
STEP = Decimal(1).scaleb(-PRICE_PLACES)

quantities = st.integers(1, 10**6).map(lambda n: Decimal(n) / 1000)  # fractional shares too
prices = st.integers(1, 10**9).map(lambda n: Decimal(n) / 10**4)  # $0.0001 .. $100,000


def _order(status: str, filled: str, avg: str | None, qty: str = "100") -> Order:
    return Order(
        id="o1",
        client_order_id="c1",
        symbol="AAPL",
        side="buy",
        type="market",
        time_in_force="day",
        status=status,
        submitted_at=NOW,
        qty=Decimal(qty),
        filled_qty=Decimal(filled),
        filled_avg_price=None if avg is None else Decimal(avg),
    )


@given(quantities, prices, quantities, prices)
def test_the_price_between_two_averages_is_the_later_fills_own_to_six_places(
    before_qty: Decimal, before_price: Decimal, more_qty: Decimal, more_price: Decimal
) -> None:
    """Two real fills (before, then more) give two cumulative averages; the price between
    them is the second fill's own price, to `PRICE_PLACES` places, half-even."""
    after_qty = before_qty + more_qty
    after_avg = (before_qty * before_price + more_qty * more_price) / after_qty
    price = fill_price_between(before_qty, before_price, after_qty, after_avg)
    assert price is not None and price > 0
    assert price.as_tuple().exponent >= -PRICE_PLACES  # type: ignore[operator]
    # The average is itself rounded to 28 digits, so the recovered price is within
    # half a step of the true one, plus that rounding magnified by after/more.
    slack = STEP / 2 + abs(after_avg) * after_qty / more_qty * Decimal("1e-26")
    assert abs(price - more_price) <= slack


@given(quantities, prices, quantities, st.integers(0, 10**9).map(lambda n: Decimal(n) / 10**7))
def test_a_derived_price_is_rounded_once_and_exact_when_it_fits(
    before_qty: Decimal, before_avg: Decimal, more_qty: Decimal, after_avg: Decimal
) -> None:
    after_qty = before_qty + more_qty
    exact = (after_qty * after_avg - before_qty * before_avg) / more_qty
    price = fill_price_between(before_qty, before_avg, after_qty, after_avg)
    if after_avg == 0 or exact <= 0:
        assert price == after_avg  # averages too rounded to tell: the cumulative average stands in
    elif exact.as_tuple().exponent >= -PRICE_PLACES:  # type: ignore[operator]
        assert price == exact
    else:
        assert price == exact.quantize(STEP)


@given(quantities, prices)
def test_without_an_earlier_fill_the_price_is_the_average(qty: Decimal, avg: Decimal) -> None:
    assert fill_price_between(Decimal(0), None, qty, avg) == avg
    assert fill_price_between(qty / 2, None, qty, avg) == avg  # no earlier average: the best known
    assert fill_price_between(qty, avg, qty, avg) is None  # nothing filled in between
    assert fill_price_between(Decimal(0), None, qty, None) is None


def test_polling_turns_state_changes_into_events() -> None:
    new = _order("new", "0", None)
    part = _order("partially_filled", "40", "10")
    done = _order("filled", "100", "10.6")
    assert [u.event for u in polled_events(None, new)] == ["new"]
    first = polled_events(new, part)
    assert [(u.event, u.qty, u.price, u.source) for u in first] == [
        ("partial_fill", Decimal(40), Decimal(10), "reconcile")
    ]
    last = polled_events(part, done)
    assert [(u.event, u.qty, u.price) for u in last] == [("fill", Decimal(60), Decimal(11))]
    assert polled_events(done, done) == []
    canceled = _order("canceled", "40", "10")
    assert [u.event for u in polled_events(part, canceled)] == ["canceled"]


@given(st.lists(st.tuples(st.integers(1, 50), st.integers(100, 20000)), min_size=1, max_size=8))
def test_polled_fills_add_up_to_the_order(fills: list[tuple[int, int]]) -> None:
    """However the fills are sampled, their sizes sum to the fill and their value to avg x fill."""
    total = sum(q for q, _ in fills)
    before: Order | None = None
    seen_qty = Decimal(0)
    seen_value = Decimal(0)
    filled = Decimal(0)
    value = Decimal(0)
    for i, (q, cents) in enumerate(fills):
        filled += q
        value += q * Decimal(cents) / 100
        status = "filled" if i == len(fills) - 1 else "partially_filled"
        after = _order(status, str(filled), str(value / filled), qty=str(total))
        for update in polled_events(before, after):
            assert update.qty is not None and update.price is not None
            seen_qty += update.qty
            seen_value += update.qty * update.price
        before = after
    assert seen_qty == total
    assert abs(seen_value - value) < Decimal("0.001") * len(fills)


@given(quantities, prices, quantities, prices, quantities, prices)
def test_the_missed_part_of_a_jumping_fill_has_the_lost_fills_own_price(
    q1: Decimal, p1: Decimal, q2: Decimal, p2: Decimal, q3: Decimal, p3: Decimal
) -> None:
    """Fills a (heard), b (lost), c (heard, jumping over b): the recovered part is b, at b's
    price to `PRICE_PLACES` places, rounded once (the earlier average is not rounded first)."""
    total = q1 + q2 + q3

    def seen(filled: Decimal, value: Decimal, qty: Decimal, price: Decimal) -> TradeUpdate:
        order = dataclasses.replace(
            _order("partially_filled", str(filled), None, qty=str(total)), filled_avg_price=value / filled
        )
        return TradeUpdate("partial_fill", order, NOW, price=price, qty=qty)

    ledger = Ledger(State.empty("account"))
    ledger.admit(seen(q1, q1 * p1, q1, p1))
    jump = seen(total, q1 * p1 + q2 * p2 + q3 * p3, q3, p3)
    gap = missed_part(ledger.state, jump)
    assert gap is not None and gap.qty == q2 and gap.price is not None
    assert gap.price.as_tuple().exponent >= -PRICE_PLACES  # type: ignore[operator]
    # Plus the 28-digit rounding of the averages, magnified by how small the lost fill is.
    slack = STEP / 2 + total * max(p1, p2, p3) / q2 * Decimal("1e-26")
    assert abs(gap.price - p2) <= slack
