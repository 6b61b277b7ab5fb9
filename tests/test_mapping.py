"""Wire JSON -> domain types: exact decimals, tolerant of new fields and statuses."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alpaca_cli.bridge import mapping
from alpaca_cli.domain import Order

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


# ------------------------------------------- the inline readers agree with the strict ones

_ORDER_FIELDS = [*(f.name for f in dataclasses.fields(Order)), "order_type"]  # the wire names are the same
_UPDATE_FIELDS = ("event", "timestamp", "execution_id", "price", "qty", "position_qty", "reason")

# What a broker (or a broken one) may put in a field: each plain shape, and what is not.
_values = st.one_of(
    st.sampled_from(
        [None, "", "x", "fill", "0", "-0.00", "1E+2", "1e-7", "12.5000", " 7 ", "1_000", "NaN", "Infinity", "abc"]
    ),
    st.sampled_from(
        ["2024-03-01T14:30:00Z", "2024-03-01T14:30:00.123456+02:00", "2024-03-01T14:30:00", "2024-13-01T00:00:00Z"]
    ),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.just([]),
    st.just({}),
    st.just([{"id": 1}]),
    st.just(["leg"]),
)


def _outcome(read: Callable[[], object]) -> object:
    """What a reader gave, as text: `repr` tells time zones and a decimal's exponent apart."""
    try:
        return repr(read())
    except mapping.MalformedAnswer as error:
        return ("MalformedAnswer", str(error))


@st.composite
def _orders_raw(draw: st.DrawFn, depth: int = 1) -> dict[str, object]:
    raw: dict[str, object] = {**ORDER, "submitted_at": "2024-03-01T14:30:00.5Z", "filled_at": "2024-03-01T14:30:02Z"}
    for name in draw(st.lists(st.sampled_from(_ORDER_FIELDS), max_size=3)):
        if draw(st.booleans()):
            raw.pop(name, None)
        else:
            raw[name] = draw(_values)
    if depth and draw(st.integers(0, 5)) == 0:
        raw["legs"] = [draw(_orders_raw(depth=0)) for _ in range(draw(st.integers(1, 2)))]
    if draw(st.booleans()):  # submitted_at and created_at (updated_at and filled_at) mostly the same text
        raw["submitted_at"] = raw.get("created_at")
    if draw(st.booleans()):
        raw["filled_at"] = raw.get("updated_at")
    return raw


@settings(max_examples=500)  # cheap: ~30 fields, each of many shapes
@given(_orders_raw())
def test_an_order_reads_the_same_inline_as_field_by_field(raw: dict[str, object]) -> None:
    assert _outcome(lambda: mapping.order(raw)) == _outcome(lambda: mapping._checked_order(raw))


@settings(max_examples=500)
@given(_orders_raw(), st.dictionaries(st.sampled_from(_UPDATE_FIELDS), _values, max_size=3))
def test_a_trade_update_reads_the_same_inline_as_field_by_field(
    order: dict[str, object], changes: dict[str, object]
) -> None:
    raw = {
        "event": "fill",
        "order": order,
        "timestamp": "2024-03-01T14:30:01.5Z",
        "execution_id": "e-1",
        "price": "187.12",
        "qty": "40",
        "position_qty": "40",
        **changes,
    }
    if raw["timestamp"] in (None, ""):
        raw["timestamp"] = "2024-03-01T14:30:01Z"  # else both would stamp their own `now`
    assert _outcome(lambda: mapping.trade_update(raw)) == _outcome(lambda: mapping._checked_trade_update(raw, "stream"))


@pytest.mark.timeout(10)
def test_a_bad_field_deep_in_nested_legs_is_found_in_one_strict_pass() -> None:
    """An irregular order falls back to the strict reader once, not once per level of legs
    (which took 2^depth passes: 6.5 s at depth 18)."""
    raw: dict[str, object] = {**ORDER, "qty": "not a number"}
    for _ in range(40):
        raw = {**ORDER, "legs": [raw]}
    with pytest.raises(mapping.MalformedAnswer, match="'qty' is not a number"):
        mapping.trade_update({"event": "fill", "order": raw, "timestamp": "2024-03-01T14:30:01Z"})
