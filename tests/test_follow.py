"""`submit --wait`'s follower prints through the core's exactly-once memory (`core.Ledger`),
the same one as `tail`: replays are dropped and a fill that jumps brings its missing part."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from alpaca_cli.domain import Order, TradeUpdate
from alpaca_cli.follow import Follower

T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
PLACED = Order(
    id="o1",
    client_order_id="c1",
    symbol="AAPL",
    side="buy",
    type="market",
    time_in_force="day",
    status="new",
    submitted_at=T0,
    qty=Decimal(100),
)


def _fill(filled: int, avg: str, qty: int, price: str, *, final: bool = False) -> TradeUpdate:
    order = dataclasses.replace(
        PLACED,
        status="filled" if final else "partially_filled",
        filled_qty=Decimal(filled),
        filled_avg_price=Decimal(avg),
    )
    name = "fill" if final else "partial_fill"
    return TradeUpdate(name, order, T0 + timedelta(seconds=filled), price=Decimal(price), qty=Decimal(qty))


def test_the_follower_drops_replays_and_recovers_a_jumped_fill() -> None:
    printed: list[TradeUpdate] = []
    follower = Follower(None, PLACED, on_update=printed.append, warn=lambda _: None)  # type: ignore[arg-type]
    first = _fill(40, "10", 40, "10")
    follower._heard(TradeUpdate("new", PLACED, T0))
    follower._heard(first)
    follower._heard(first)  # a replay after a reconnect
    # 40 -> 70 at 12 was never heard; 70 -> 100 at 13 arrives (average 11.5).
    follower._heard(_fill(100, "11.5", 30, "13", final=True))
    assert [(u.event, u.qty, u.price, u.source) for u in printed] == [
        ("new", None, None, "stream"),
        ("partial_fill", Decimal(40), Decimal(10), "stream"),
        ("partial_fill", Decimal(30), Decimal(12), "reconcile"),
        ("fill", Decimal(30), Decimal(13), "stream"),
    ]
    assert follower.current.status == "filled"
