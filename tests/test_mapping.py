"""Wire JSON -> domain types: exact decimals, tolerant of new fields and statuses."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import msgpack

from alpaca_cli.bridge import mapping

ORDER = {
    "id": "61e69015-8549-4bfd-b9c3-01e75843f47d",
    "client_order_id": "cli-1",
    "created_at": "2024-03-01T14:30:00.123456789Z",
    "updated_at": "2024-03-01T14:30:01Z",
    "submitted_at": "2024-03-01T14:30:00.123456Z",
    "symbol": "AAPL",
    "side": "buy",
    "type": "limit",
    "time_in_force": "day",
    "status": "partially_filled",
    "qty": "100",
    "filled_qty": "40",
    "filled_avg_price": "187.1200",
    "limit_price": "187.5",
    "extended_hours": False,
    "some_future_field": {"x": 1},
}


def test_order_keeps_money_exact_and_ignores_unknown_fields() -> None:
    order = mapping.order(ORDER)
    assert order.qty == Decimal("100") and order.filled_qty == Decimal("40")
    assert order.filled_avg_price == Decimal("187.1200")
    assert order.submitted_at == datetime(2024, 3, 1, 14, 30, 0, 123456, tzinfo=UTC)
    assert order.created_at is not None and order.created_at.microsecond == 123456  # nanoseconds truncated
    assert not order.is_final


def test_trade_update_carries_the_fill_of_its_own() -> None:
    update = mapping.trade_update(
        {
            "event": "partial_fill",
            "order": ORDER,
            "timestamp": "2024-03-01T14:30:01.5Z",
            "execution_id": "e-1",
            "price": "187.12",
            "qty": "40",
            "position_qty": "40",
        }
    )
    assert (update.event, update.qty, update.price, update.position_qty) == (
        "partial_fill",
        Decimal(40),
        Decimal("187.12"),
        Decimal(40),
    )
    assert update.source == "stream"
    assert mapping.trade_update({"event": "some_new_event", "order": ORDER}, source="reconcile").source == "reconcile"


def test_short_position_is_positive_qty_with_side() -> None:
    position = mapping.position({"symbol": "TSLA", "qty": "-3.5", "avg_entry_price": "200", "side": "short"})
    assert position.qty == Decimal("3.5") and position.signed_qty == Decimal("-3.5")


def test_bar_from_msgpack_timestamp_and_from_rest() -> None:
    stamp = msgpack.Timestamp.from_datetime(datetime(2024, 3, 1, 14, 30, tzinfo=UTC))
    streamed = mapping.bar({"S": "AAPL", "t": stamp, "o": 1, "h": 2, "l": 0.5, "c": 1.5, "v": 100, "n": 3, "vw": 1.2})
    rest = mapping.bar({"t": "2024-03-01T14:30:00Z", "o": 1, "h": 2, "l": 0.5, "c": 1.5, "v": 100, "n": None}, "AAPL")
    assert streamed.timestamp == rest.timestamp
    assert (streamed.symbol, rest.symbol, rest.trade_count, rest.vwap) == ("AAPL", "AAPL", None, None)


def test_account_status_and_flags() -> None:
    account = mapping.account(
        {"id": "a", "account_number": "PA1", "status": "ACTIVE", "cash": "10.5", "trading_blocked": True}
    )
    assert account.cash == Decimal("10.5") and account.trading_blocked and not account.account_blocked
