"""The sandbox's JSON encoding (`wire`) on its own: the engine's objects in, Alpaca's shapes out."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from alpaca_cli.sandbox import wire
from alpaca_cli.sandbox.model import (
    AccountView,
    Bar,
    BrokerError,
    Outcome,
    PositionView,
    SimOrder,
    TradeEvent,
)

D = Decimal
AT = datetime(2026, 3, 10, 15, 0, 1, 250000, tzinfo=UTC)


def sim_order(**fields: object) -> SimOrder:
    base: dict[str, object] = {
        "id": "o-1",
        "client_order_id": "c-1",
        "symbol": "AAPL",
        "side": "buy",
        "type": "limit",
        "time_in_force": "gtc",
        "created_at": AT,
        "submitted_at": AT,
        "updated_at": AT,
        "qty": D("10.50"),
        "limit_price": D("190.10"),
    }
    base.update(fields)
    return SimOrder(**base)  # type: ignore[arg-type]


def test_an_order_writes_numbers_as_plain_strings_and_times_in_utc() -> None:
    order = sim_order(filled_qty=D("4"), filled_value=D("760.4"))
    body = wire.order(order)
    assert (body["qty"], body["limit_price"], body["filled_qty"]) == ("10.5", "190.1", "4")
    assert body["filled_avg_price"] == "190.1" and body["notional"] is None
    assert body["created_at"] == "2026-03-10T15:00:01.250000Z" and body["filled_at"] is None
    assert (body["type"], body["order_type"], body["asset_class"]) == ("limit", "limit", "us_equity")


def test_legs_are_nested_only_when_asked() -> None:
    entry = sim_order(order_class="bracket")
    entry.legs.append(sim_order(id="o-2", client_order_id="c-2", side="sell", parent=entry, status="held"))
    assert wire.order(entry)["legs"] is None
    nested = wire.order(entry, nested=True)["legs"]
    assert [(leg["id"], leg["status"], leg["legs"]) for leg in nested] == [("o-2", "held", None)]


def test_a_short_position_is_negative_and_its_cost_basis_comes_from_the_published_average() -> None:
    view = PositionView("TSLA", "NASDAQ", D(-3), D("200") / D(3), D("190"), D("195"), D(-3))
    body = wire.position(view)
    assert (body["side"], body["qty"], body["market_value"]) == ("short", "-3", "-570")
    assert D(body["cost_basis"]) == (D(body["qty"]) * D(body["avg_entry_price"])).quantize(D("0.0001"))
    assert body["qty_available"] == "-3" and body["usd"]["current_price"] == "190"


def test_the_account_writes_money_as_strings() -> None:
    view = AccountView(
        D("98450"), D("1650"), D(0), D("199100.004"), 2, D("100000"), 1, D("825"), D("495"), date.today()
    )
    body = wire.account(view)
    assert (body["cash"], body["equity"], body["buying_power"]) == ("98450", "100100", "199100")
    assert body["multiplier"] == "2" and body["daytrade_count"] == 1 and body["status"] == "ACTIVE"


def test_a_fill_event_carries_its_own_price_and_size_and_a_new_event_does_not() -> None:
    order = sim_order(status="partially_filled", filled_qty=D(4), filled_value=D("760"))
    fill = wire.trade_event(TradeEvent("partial_fill", order, AT, "x-1", D("190.00"), D(4), D("4")))
    assert (fill["price"], fill["qty"], fill["position_qty"], fill["execution_id"]) == ("190", "4", "4", "x-1")
    assert fill["order"]["status"] == "partially_filled" and fill["timestamp"] == "2026-03-10T15:00:01.250000Z"
    assert set(wire.trade_event(TradeEvent("new", order, AT))) == {"event", "order", "timestamp"}


def test_refusals_and_bulk_outcomes() -> None:
    refused = BrokerError(403, 40310000, "insufficient buying power", buying_power=D("10.50"))
    assert wire.refusal(refused) == {"code": 40310000, "message": "insufficient buying power", "buying_power": "10.5"}
    order = sim_order()
    assert wire.cancel_outcome(Outcome("o-1", order=order))["status"] == 200
    assert wire.cancel_outcome(Outcome("o-9", error=refused))["body"]["code"] == 40310000
    closed = wire.close_outcome(Outcome("AAPL", order=order))
    assert (closed["symbol"], closed["order_id"], closed["body"]["id"]) == ("AAPL", "o-1", "o-1")


def test_a_bar_writes_prices_as_numbers_and_its_start_to_the_second() -> None:
    bar = Bar(datetime(2026, 3, 10, 15, 1, tzinfo=UTC), D("1.5"), D("2"), D("1"), D("1.75"), D(300), 3, D("1.6667"))
    assert wire.bar(bar) == {
        "t": "2026-03-10T15:01:00Z",
        "o": 1.5,
        "h": 2.0,
        "l": 1.0,
        "c": 1.75,
        "v": 300,
        "n": 3,
        "vw": 1.6667,
    }
    short = Bar(AT, D(1), D(1), D(1), D(1), D("0.25"), 1, D(1))
    assert wire.bar(short)["t"] == "2026-03-10T15:00:01.250000Z"  # bars shorter than a second apart stay apart
    assert wire.bar(short)["v"] == 0.25  # a crypto bar's volume is fractions of a coin
