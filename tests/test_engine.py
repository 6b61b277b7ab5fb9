"""The sandbox's matching engine on its own: no sockets, a hand-driven clock."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alpaca_cli.sandbox.engine import PaperBroker
from alpaca_cli.sandbox.faults import Faults
from alpaca_cli.sandbox.model import Bar, BrokerError, SimOrder, TradeEvent
from alpaca_cli.sandbox.orderrequest import parse_order, replacement

D = Decimal


class Clock:
    """A clock that moves only when told to (one millisecond per read keeps order times apart)."""

    def __init__(self) -> None:
        self.at = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)  # a Tuesday, market hours

    def __call__(self) -> datetime:
        self.at += timedelta(milliseconds=1)
        return self.at


def make_broker(**kwargs: Any) -> tuple[PaperBroker, list[TradeEvent]]:
    broker = PaperBroker(seed=3, now=Clock(), volatility=0.0, **kwargs)
    events: list[TradeEvent] = []
    broker.listeners.append(events.append)
    return broker, events


def order(symbol: str = "AAPL", **fields: Any) -> dict[str, Any]:
    body = {"symbol": symbol, "side": "buy", "type": "market", "time_in_force": "day"}
    body.update(fields)
    return body


def submit(broker: PaperBroker, body: dict[str, Any]) -> SimOrder:
    """Place an order as the server does: the body parsed, then handed to the engine."""
    return broker.submit(parse_order(body))


def replace(broker: PaperBroker, order_id: str, body: dict[str, Any]) -> SimOrder:
    """Replace an order as the server does: the patch merged into the old order's terms."""
    return broker.replace(order_id, replacement(broker.replaceable(order_id), body))


def refused(broker: PaperBroker, body: dict[str, Any]) -> BrokerError:
    with pytest.raises(BrokerError) as info:
        submit(broker, body)
    return info.value


def test_market_order_fills_in_chunks_over_steps() -> None:
    broker, events = make_broker()
    broker.set_price("AAPL", D("100"))
    placed = submit(broker, order(qty=250))
    assert placed.status == "new" and events[-1].event == "new"
    for _ in range(3):
        broker.step()
    kinds = [(e.event, e.qty, e.position_qty) for e in events]
    assert kinds == [
        ("new", None, None),
        ("partial_fill", D("100"), D("100")),
        ("partial_fill", D("100"), D("200")),
        ("fill", D("50"), D("250")),
    ]
    fill = events[-1]
    assert fill.price == D("100") and fill.order.filled_qty == D("250")
    assert fill.order.status == "filled" and fill.order.filled_avg_price == D("100")
    assert len({e.execution_id for e in events[1:]}) == 3
    assert broker.get_order(placed.id).status == "filled"
    assert broker.cash == 75000


def test_limit_order_rests_until_the_price_crosses() -> None:
    broker, events = make_broker()
    broker.set_price("MSFT", D("50"))
    placed = submit(broker, order("MSFT", qty=10, type="limit", limit_price=49.5, time_in_force="gtc"))
    broker.step()
    broker.step()
    assert broker.get_order(placed.id).status == "new"
    broker.set_price("MSFT", D("49.4"))
    broker.step()
    assert events[-1].event == "fill" and events[-1].price == D("49.4")


def test_limit_order_fills_only_while_marketable() -> None:
    broker, _ = make_broker()
    broker.set_price("MSFT", D("50"))
    placed = submit(broker, order("MSFT", qty=300, type="limit", limit_price=50, time_in_force="gtc"))
    broker.step()  # 100 at 50
    broker.set_price("MSFT", D("51"))
    broker.step()
    broker.step()
    assert broker.get_order(placed.id).filled_qty == D("100")
    broker.set_price("MSFT", D("49"))
    broker.step()
    broker.step()
    got = broker.get_order(placed.id)
    assert got.status == "filled" and got.filled_avg_price == D("49.3333")


def test_stop_and_stop_limit_trigger_on_the_way_down() -> None:
    broker, events = make_broker()
    broker.set_price("IBM", D("100"))
    submit(broker, order("IBM", qty=20))
    broker.step()
    stop = submit(broker, order("IBM", qty=10, side="sell", type="stop", stop_price=95))
    stop_limit = submit(broker, order("IBM", qty=10, side="sell", type="stop_limit", stop_price=95, limit_price=94))
    broker.step()
    assert broker.get_order(stop.id).status == "new"
    broker.set_price("IBM", D("93"))  # stop triggers and fills; the stop-limit triggers below its limit
    broker.step()
    assert broker.get_order(stop.id).status == "filled"
    assert broker.get_order(stop_limit.id).status == "new"
    broker.set_price("IBM", D("94.5"))
    broker.step()
    assert broker.get_order(stop_limit.id).status == "filled"
    assert broker.position_qty("IBM") == 0
    assert [e.price for e in events if e.event == "fill"][-2:] == [D("93"), D("94.5")]


def test_trailing_stop_follows_the_high_water_mark() -> None:
    broker, _ = make_broker()
    broker.set_price("SPY", D("100"))
    submit(broker, order("SPY", qty=5))
    broker.step()
    trail = submit(broker, order("SPY", qty=5, side="sell", type="trailing_stop", trail_price=2))
    assert trail.hwm == D("100") and trail.stop_price == D("98")
    broker.set_price("SPY", D("110"))
    broker.step()
    moved = broker.get_order(trail.id)
    assert moved.hwm == D("110") and moved.stop_price == D("108") and moved.status == "new"
    broker.set_price("SPY", D("107.5"))
    broker.step()
    assert broker.get_order(trail.id).status == "filled"


def test_ioc_fills_what_it_can_then_expires() -> None:
    broker, events = make_broker()
    broker.set_price("AAPL", D("10"))
    placed = submit(broker, order(qty=250, time_in_force="ioc"))
    broker.step()
    assert [e.event for e in events] == ["new", "partial_fill", "expired"]
    got = broker.get_order(placed.id)
    assert got.status == "expired" and got.filled_qty == D("100") and got.expired_at


def test_fok_fills_whole_or_expires() -> None:
    broker, events = make_broker()
    broker.set_price("AAPL", D("10"))
    whole = submit(broker, order(qty=250, time_in_force="fok"))
    miss = submit(broker, order(qty=5, type="limit", limit_price=9, time_in_force="fok"))
    broker.step()
    assert broker.get_order(whole.id).filled_qty == D("250")
    assert broker.get_order(miss.id).status == "expired"
    assert [e.event for e in events if e.order.id == whole.id] == ["new", "fill"]


def test_notional_order_buys_fractional_shares() -> None:
    broker, events = make_broker()
    broker.set_price("AAPL", D("300"))
    placed = submit(broker, order(notional=1000))
    assert placed.notional == D("1000") and placed.qty is None
    broker.step()
    fill = events[-1]
    assert fill.event == "fill" and fill.qty == D("3.333333333")
    assert broker.positions()[0].qty == D("3.333333333")


def test_buying_power_refusal_and_reservation() -> None:
    broker, _ = make_broker()
    broker.set_price("AAPL", D("1000"))
    assert broker.buying_power() == 200000
    err = refused(broker, order(qty=201))
    assert (err.status, err.code, err.message) == (403, 40310000, "insufficient buying power")
    submit(broker, order(qty=150, type="limit", limit_price=900, time_in_force="gtc"))
    assert broker.buying_power() == 65000  # 200000 - 150 x 900 held for the order
    err = refused(broker, order(qty=70))
    assert err.status == 403


def test_selling_more_than_held_is_refused() -> None:
    broker, _ = make_broker()
    broker.set_price("AAPL", D("10"))
    submit(broker, order(qty=5))
    broker.step()
    submit(broker, order(qty=3, side="sell", type="limit", limit_price=20, time_in_force="gtc"))
    err = refused(broker, order(qty=3, side="sell"))
    assert err.status == 403 and "available: 2" in err.message
    err = refused(broker, order("MSFT", qty=0.5, side="sell"))
    assert err.status == 403 and "sold short" in err.message


def test_short_sale_and_cover() -> None:
    broker, _ = make_broker()
    broker.set_price("TSLA", D("200"))
    submit(broker, order("TSLA", qty=10, side="sell"))
    broker.step()
    (pos,) = broker.positions()
    assert pos.qty == -10 and pos.qty * pos.current_price == -2000
    broker.set_price("TSLA", D("190"))
    submit(broker, order("TSLA", qty=10, side="buy"))
    broker.step()
    assert broker.positions() == []
    assert broker.cash == 100100


def test_average_entry_price_and_cash() -> None:
    broker, _ = make_broker()
    broker.set_price("AAPL", D("100"))
    submit(broker, order(qty=10))
    broker.step()
    broker.set_price("AAPL", D("110"))
    submit(broker, order(qty=10))
    broker.step()
    assert broker.positions()[0].avg_entry_price == 105
    submit(broker, order(qty=5, side="sell"))
    broker.step()
    pos = broker.positions()[0]
    assert pos.qty == 15 and pos.avg_entry_price == 105 and pos.qty * pos.avg_entry_price == 1575
    account = broker.account()
    assert account.cash == 98450 and account.equity == 100100
    assert account.daytrade_count == 1


def test_duplicate_client_order_id_is_refused() -> None:
    broker, _ = make_broker()
    submit(broker, order(qty=1, client_order_id="same"))
    err = refused(broker, order(qty=1, client_order_id="same"))
    assert (err.status, err.code, err.message) == (422, 40010001, "client_order_id must be unique")
    assert broker.get_order_by_client_id("same").qty == D("1")


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"qty": None}, "qty or notional"),
        ({"qty": 1, "notional": 5}, "only one"),
        ({"qty": 0}, "qty must be > 0"),
        ({"qty": 1, "side": "hold"}, "side"),
        ({"qty": 1, "type": "limit"}, "limit_price is required"),
        ({"qty": 1, "type": "stop"}, "stop_price is required"),
        ({"qty": 1, "type": "limit", "limit_price": 10.001}, "sub-penny"),
        ({"qty": 1, "time_in_force": "week"}, "time_in_force"),
        ({"qty": 1.5, "time_in_force": "gtc"}, "DAY"),
        ({"notional": 10, "type": "limit", "limit_price": 5}, "market"),
        ({"qty": 1, "type": "trailing_stop"}, "trail"),
        ({"qty": 1, "client_order_id": "x" * 129}, "128"),
        ({"qty": "abc"}, "invalid qty"),
        ({"qty": 1, "symbol": "not a symbol"}, "not found"),
    ],
)
def test_invalid_orders_are_refused_with_422(fields: dict[str, Any], fragment: str) -> None:
    broker, events = make_broker()
    err = refused(broker, order(**fields))
    assert err.status == 422 and fragment in err.message
    assert events == [] and broker.order_count() == 0


def test_cancel_and_its_refusals() -> None:
    broker, events = make_broker()
    placed = submit(broker, order(qty=1, type="limit", limit_price=1, time_in_force="gtc"))
    broker.cancel(placed.id)
    assert events[-1].event == "canceled" and events[-1].order.canceled_at
    with pytest.raises(BrokerError) as again:
        broker.cancel(placed.id)
    assert again.value.status == 422
    with pytest.raises(BrokerError) as unknown:
        broker.cancel("00000000-0000-4000-8000-000000000000")
    assert (unknown.value.status, unknown.value.code) == (404, 40410000)
    with pytest.raises(BrokerError):
        broker.get_order_by_client_id("nope")


def test_cancel_all_lists_every_open_order() -> None:
    broker, _ = make_broker()
    ids = {submit(broker, order(qty=1, type="limit", limit_price=1, time_in_force="gtc")).id for _ in range(3)}
    results = broker.cancel_all()
    assert {r.key for r in results} == ids and all(r.order is not None and r.error is None for r in results)
    assert broker.list_orders("open") == [] and broker.cancel_all() == []


def test_list_orders_pages_by_submitted_at_without_overlap() -> None:
    broker, _ = make_broker()
    broker.seed_bulk(open_orders=1234, positions=10)
    seen: list[str] = []
    until = None
    while True:
        page = broker.list_orders("open", limit=500, until=until, direction="desc")
        if not page:
            break
        seen.extend(o.id for o in page)
        until = page[-1].submitted_at
    assert len(seen) == len(set(seen)) == 1234
    first = broker.list_orders("open", limit=3, direction="asc")
    after = broker.list_orders("open", limit=2, direction="asc", after=first[0].submitted_at)
    assert [o.id for o in after] == [o.id for o in first[1:]]
    assert broker.list_orders("closed") == []
    assert len(broker.list_orders("all", limit=500, symbols=["QAAA"], side="sell")) == 124


def test_seed_bulk_is_fast_and_listing_stays_cheap() -> None:
    broker = PaperBroker(seed=1)
    started = time.perf_counter()
    broker.seed_bulk(open_orders=20_000, positions=2_000)
    assert time.perf_counter() - started < 5
    assert broker.open_order_count() == 20_000 and len(broker.positions()) == 2_000
    started = time.perf_counter()
    page = broker.list_orders("open", limit=500)
    assert len(page) == 500 and time.perf_counter() - started < 0.5
    started = time.perf_counter()
    broker.step()
    assert time.perf_counter() - started < 0.5  # seeded symbols rest; nothing to walk


def test_same_seed_same_market() -> None:
    def run() -> list[Any]:
        broker = PaperBroker(seed=11, now=Clock())
        prints: list[Any] = []
        broker.trade_listeners.append(lambda *args: prints.append(args))
        broker.price("AAPL")
        placed = submit(broker, order(qty=1))
        for _ in range(20):
            broker.step()
        return [prints, broker.get_order(placed.id).filled_avg_price, placed.id]

    first, second = run(), run()
    assert first[:2] == second[:2]
    assert first[2] != second[2]  # ids are random UUID4s, never the seed's
    assert PaperBroker(seed=1).price("AAPL") != PaperBroker(seed=2).price("AAPL")


def test_clock_follows_the_calendar_unless_forced_closed() -> None:
    broker, _ = make_broker()
    clock = broker.clock()
    assert clock.is_open is True
    assert clock.next_close < clock.next_open
    broker.market_closed = True
    closed = broker.clock()
    assert closed.is_open is False and closed.next_open < closed.next_close


def test_market_closed_nothing_moves() -> None:
    broker, events = make_broker(market_closed=True)
    broker.set_price("AAPL", D("10"))
    submit(broker, order(qty=1))
    broker.step()
    assert [e.event for e in events] == ["new"]


def test_bars_page_by_token_and_join_live_prints() -> None:
    clock = Clock()
    broker = PaperBroker(seed=5, now=clock)
    broker.price("AAPL")
    for _ in range(30):
        clock.at += timedelta(seconds=10)
        broker.step()
    start = clock.at - timedelta(hours=3)
    whole = broker.bars(["AAPL", "MSFT"], "1Min", start=start, limit=10000)
    assert whole.next_page_token is None
    paged: dict[str, list[Bar]] = {}
    token = None
    while True:
        page = broker.bars(["MSFT", "AAPL"], "1Min", start=start, limit=70, page_token=token)
        for symbol, bars in page.bars.items():
            paged.setdefault(symbol, []).extend(bars)
        token = page.next_page_token
        if token is None:
            break
    assert paged == whole.bars
    bars = whole.bars["AAPL"]
    assert all(b.l <= min(b.o, b.c) and b.h >= max(b.o, b.c) and b.v > 0 for b in bars)
    assert [b.t for b in bars] == sorted({b.t for b in bars})
    assert bars[-1].c == broker.price("AAPL")
    hourly = broker.bars(["AAPL"], "1Hour", start=start).bars["AAPL"]
    assert 3 <= len(hourly) <= 4
    with pytest.raises(BrokerError):
        broker.bars(["AAPL"], "7Years")


def test_fault_updates_are_validated_and_atomic() -> None:
    faults = Faults()
    faults.update(rest_status=503, rest_count=2, drop_data_every=1)
    assert faults.drop_data_every == 1.0
    with pytest.raises(ValueError):
        faults.update(mute_data=True, rest_count="3")
    assert faults.mute_data is False
    with pytest.raises(ValueError):
        faults.update(no_such_fault=True)
    faults.reset()
    assert faults == Faults()


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["buy", "sell"]),
            st.integers(min_value=1, max_value=40),
            st.integers(min_value=500, max_value=20000),
        ),
        min_size=1,
        max_size=25,
    )
)
def test_fills_conserve_value_at_the_fill_price(trades: list[tuple[str, int, int]]) -> None:
    """A fill swaps cash for shares at its price: equity valued at that price is unchanged."""
    broker = PaperBroker(seed=0, now=Clock(), volatility=0.0)
    checks: list[tuple[Decimal, Decimal]] = []
    state = {"cash": broker.cash, "qty": Decimal(0)}

    def on_event(event: TradeEvent) -> None:
        if event.event not in ("fill", "partial_fill"):
            return
        assert event.price is not None and event.position_qty is not None
        before = state["cash"] + state["qty"] * event.price
        state["cash"], state["qty"] = broker.cash, event.position_qty
        checks.append((before, state["cash"] + state["qty"] * event.price))

    broker.listeners.append(on_event)
    for side, qty, cents in trades:
        broker.set_price("AAPL", Decimal(cents) / 100)
        try:
            submit(broker, order(side=side, qty=qty))
        except BrokerError as exc:
            assert exc.status == 403
            continue
        broker.step()
    assert all(before == after for before, after in checks)
    position = broker.positions()
    if position:
        assert position[0].qty == state["qty"]


def test_replace_swaps_the_order_and_keeps_the_holds_right() -> None:
    broker, events = make_broker()
    broker.set_price("AAPL", D("100"))
    old = submit(broker, order(qty=10, type="limit", limit_price=90, time_in_force="gtc"))
    assert broker.buying_power() == 199100
    new = replace(broker, old.id, {"qty": "20", "limit_price": "95"})
    assert new.replaces == old.id and new.qty == D("20") and new.limit_price == D("95")
    replaced = broker.get_order(old.id)
    assert replaced.status == "replaced" and replaced.replaced_by == new.id
    assert [e.event for e in events] == ["new", "replaced", "new"]
    assert broker.buying_power() == 198100
    with pytest.raises(BrokerError) as again:
        replace(broker, old.id, {"qty": "5"})
    assert again.value.status == 422
    with pytest.raises(BrokerError) as too_big:
        replace(broker, new.id, {"qty": "5000"})
    assert too_big.value.status == 403
    assert broker.get_order(new.id).status == "new"  # a refused replace changes nothing
    assert broker.buying_power() == 198100


def test_close_position_flattens_with_a_market_order() -> None:
    broker, _ = make_broker()
    broker.set_price("AAPL", D("10"))
    submit(broker, order(qty=8))
    broker.step()
    half = broker.close_position("AAPL", percentage=Decimal(50))
    assert half.side == "sell" and half.qty == D("4")
    broker.step()
    results = broker.close_all_positions()
    assert [(r.key, r.error) for r in results] == [("AAPL", None)]
    broker.step()
    assert broker.positions() == []
    with pytest.raises(BrokerError) as gone:
        broker.close_position("AAPL")
    assert gone.value.status == 404


def test_orders_on_a_halted_symbol_are_rejected_asynchronously() -> None:
    broker, events = make_broker()
    broker.set_price("AAPL", D("10"))
    broker.halted.add("AAPL")
    placed = submit(broker, order(qty=1))
    assert placed.status == "new"
    broker.step()
    assert [e.event for e in events] == ["new", "rejected"]
    got = broker.get_order(placed.id)
    assert got.status == "rejected" and got.failed_at
    assert broker.buying_power() == 200000


def test_day_orders_expire_at_the_end_of_the_day() -> None:
    broker, events = make_broker()
    day = submit(broker, order(qty=1, type="limit", limit_price=1))
    gtc = submit(broker, order(qty=1, type="limit", limit_price=1, time_in_force="gtc"))
    assert broker.expire_day_orders() == 1
    assert broker.get_order(day.id).status == "expired" and events[-1].event == "expired"
    assert broker.get_order(gtc.id).status == "new"


operations = st.lists(
    st.one_of(
        st.tuples(
            st.just("submit"),
            st.sampled_from(["buy", "sell"]),
            st.sampled_from(["market", "limit", "stop", "trailing_stop"]),
            st.sampled_from(["day", "gtc", "ioc", "fok"]),
            st.integers(min_value=1, max_value=350),
            st.integers(min_value=-300, max_value=300),
        ),
        st.tuples(
            st.just("group"),
            st.sampled_from(["bracket", "oto", "oco"]),
            st.sampled_from(["buy", "sell"]),
            st.integers(min_value=1, max_value=350),
            st.integers(min_value=-30, max_value=30),
            st.integers(min_value=-30, max_value=30),
        ),
        st.tuples(st.just("cancel"), st.integers(min_value=0, max_value=50)),
        st.tuples(st.just("price"), st.integers(min_value=5000, max_value=15000)),
        st.tuples(st.just("step"), st.integers(min_value=1, max_value=4)),
    ),
    max_size=40,
)


@settings(max_examples=80, deadline=None)
@given(operations)
def test_books_stay_consistent_under_any_sequence(ops: list[tuple[Any, ...]]) -> None:
    """Whatever happens, holds, indexes and positions agree with the orders and fills."""
    broker = PaperBroker(seed=9, now=Clock(), volatility=0.0)
    broker.set_price("AAPL", D("100"))
    fills: list[Decimal] = []
    broker.listeners.append(
        lambda e: (
            fills.append((e.qty or 0) * (1 if e.order.side == "buy" else -1))
            if e.event in ("fill", "partial_fill")
            else None
        )
    )
    placed: list[str] = []
    for op in ops:
        if op[0] == "submit":
            _, side, kind, tif, qty, offset = op
            body = order(side=side, type=kind, time_in_force=tif, qty=qty)
            price = broker.price("AAPL")
            if kind == "limit":
                body["limit_price"] = str(max(price + Decimal(offset) / 10, Decimal(1)))
            elif kind == "stop":
                body["stop_price"] = str(max(price + Decimal(offset) / 10, Decimal(1)))
            elif kind == "trailing_stop":
                body["trail_price"] = str(abs(offset) / 10 + 1)
            try:
                placed.append(submit(broker, body).id)
            except BrokerError as exc:
                assert exc.status in (403, 422)
        elif op[0] == "group":
            _, cls, side, qty, tp_offset, sl_offset = op
            price = broker.price("AAPL")
            body = order(side=side, type="limit" if cls == "oco" else "market", time_in_force="gtc", qty=qty)
            body["order_class"] = cls
            body["take_profit"] = {"limit_price": str(max(price + Decimal(tp_offset) / 10, Decimal(1)))}
            body["stop_loss"] = {"stop_price": str(max(price + Decimal(sl_offset) / 10, Decimal(1)))}
            if cls == "oto":
                del body["take_profit" if tp_offset % 2 else "stop_loss"]
            try:
                made = submit(broker, body)
            except BrokerError as exc:
                assert exc.status in (403, 422)
            else:
                placed += [made.id, *(leg.id for leg in made.legs or [])]
        elif op[0] == "cancel" and placed:
            target = placed[op[1] % len(placed)]
            try:
                broker.cancel(target)
            except BrokerError as exc:
                assert exc.status == 422
        elif op[0] == "price":
            broker.set_price("AAPL", Decimal(op[1]) / 100)
        elif op[0] == "step":
            for _ in range(op[1]):
                broker.step()
    open_orders = broker.orders.open.orders
    assert broker.ledger.reserved == sum((o.reserve for o in open_orders), Decimal(0))
    assert broker.ledger.reserved >= 0 and broker.buying_power() >= 0
    assert len(broker.orders.open) + len(broker.orders.closed) == len(broker.orders.all) == len(placed)
    assert all(o.is_open for o in open_orders) and not any(o.is_open for o in broker.orders.closed.orders)
    assert all(o.qty is None or o.filled_qty <= o.qty for o in broker.orders.all.orders)
    held = sum((o.remaining for o in open_orders if o.holds), Decimal(0))
    for entry in broker.orders.all.orders:  # a group never has two live exits holding the same shares
        live = [o for o in entry.legs if o.is_open and o.status != "held"]
        assert sum(o.holds for o in (entry, *live) if o.is_open) <= 1 or entry.order_class == "simple"
    state = broker._book("AAPL")
    assert state.pending_close == held
    assert broker.position_qty("AAPL") == sum(fills, Decimal(0))
    pos = broker.position_qty("AAPL")
    assert held <= abs(pos)


# ------------------------------------------------------------- bracket, oco, oto


def bracket(symbol: str = "AAPL", **fields: Any) -> dict[str, Any]:
    body = order(symbol, qty=150, time_in_force="gtc", order_class="bracket")
    body.update(take_profit={"limit_price": D("105")}, stop_loss={"stop_price": D("95")})
    body.update(fields)
    return body


def test_bracket_exits_are_held_until_the_entry_fills_then_one_cancels_the_other() -> None:
    broker, events = make_broker()
    broker.set_price("AAPL", D("100"))
    placed = submit(broker, bracket())
    take_profit, stop_loss = placed.legs
    assert placed.order_class == "bracket" and placed.status == "new"
    assert [(leg.type, leg.side, leg.status, leg.qty) for leg in placed.legs] == [
        ("limit", "sell", "held", D("150")),
        ("stop", "sell", "held", D("150")),
    ]
    assert (take_profit.limit_price, stop_loss.stop_price) == (D("105"), D("95"))
    broker.step()  # the entry fills 100 of 150: the exits stay held
    assert broker.get_order(stop_loss.id).status == "held"
    broker.step()
    assert [broker.get_order(leg.id).status for leg in placed.legs] == ["new", "new"]
    assert broker.positions()[0].qty_available == 0  # both exits hold the same 150 shares, once
    broker.set_price("AAPL", D("105.5"))
    broker.step()  # the take-profit sells 100: the stop shrinks to the 50 left
    assert broker.get_order(stop_loss.id).qty == D("50")
    broker.step()
    assert broker.get_order(take_profit.id).status == "filled"
    assert broker.get_order(stop_loss.id).status == "canceled"
    assert broker.positions() == []
    legs = [(e.event, e.order.type) for e in events if e.order.id != placed.id]
    assert legs == [
        ("new", "limit"),
        ("new", "stop"),
        ("partial_fill", "limit"),
        ("fill", "limit"),
        ("canceled", "stop"),
    ]


def test_canceling_any_order_of_a_group_cancels_the_rest() -> None:
    broker, _ = make_broker()
    broker.set_price("AAPL", D("100"))
    placed = submit(broker, bracket(type="limit", limit_price=D("90"), stop_loss={"stop_price": D("85")}))
    broker.cancel(placed.legs[1].id)
    assert [broker.get_order(o).status for o in (placed.id, *(leg.id for leg in placed.legs))] == [
        "canceled",
        "canceled",
        "canceled",
    ]
    assert broker.open_order_count() == 0 and broker.buying_power() == 200000
    again = submit(
        broker, bracket(client_order_id="b2", type="limit", limit_price=D("90"), stop_loss={"stop_price": D("85")})
    )
    results = broker.cancel_all()
    assert [r.error for r in results] == [None, None, None]
    assert {r.key for r in results} == {again.id, *(leg.id for leg in again.legs)}
    day = submit(
        broker,
        bracket(
            client_order_id="b3",
            time_in_force="day",
            type="limit",
            limit_price=D("90"),
            stop_loss={"stop_price": D("85")},
        ),
    )
    assert broker.expire_day_orders() == 1
    assert [broker.get_order(leg.id).status for leg in day.legs] == ["canceled", "canceled"]


def test_oco_exits_a_position_and_oto_attaches_one_exit() -> None:
    broker, _ = make_broker()
    broker.set_price("AAPL", D("100"))
    submit(broker, order(qty=20))
    broker.step()
    oco = submit(
        broker,
        order(
            side="sell",
            type="limit",
            qty=20,
            time_in_force="gtc",
            order_class="oco",
            take_profit={"limit_price": D("110")},
            stop_loss={"stop_price": D("90"), "limit_price": D("89.5")},
        ),
    )
    assert (oco.type, oco.limit_price, oco.status) == ("limit", D("110"), "new")
    assert [(leg.type, leg.stop_price, leg.status) for leg in oco.legs] == [("stop_limit", D("90"), "new")]
    assert broker.positions()[0].qty_available == 0
    broker.set_price("AAPL", D("89.9"))
    broker.step()
    broker.step()
    assert broker.get_order(oco.legs[0].id).status == "filled"
    assert broker.get_order(oco.id).status == "canceled" and broker.positions() == []
    oto = submit(broker, order(qty=5, time_in_force="gtc", order_class="oto", stop_loss={"stop_price": D("80")}))
    assert [(leg.type, leg.status) for leg in oto.legs] == [("stop", "held")]


def test_listing_nests_legs_only_when_asked() -> None:
    broker, _ = make_broker()
    broker.set_price("AAPL", D("100"))
    placed = submit(broker, bracket(type="limit", limit_price=D("90"), stop_loss={"stop_price": D("85")}))
    flat = broker.list_orders(status="open")
    assert {o.id for o in flat} == {placed.id, *(leg.id for leg in placed.legs)}
    nested = broker.list_orders(status="open", nested=True)
    assert [o.id for o in nested] == [placed.id]
    assert [leg.id for leg in nested[0].legs] == [leg.id for leg in placed.legs]


def test_replacing_a_live_exit_keeps_it_in_its_group() -> None:
    broker, _ = make_broker()
    broker.set_price("AAPL", D("100"))
    placed = submit(broker, bracket(qty=50))
    broker.step()
    new_stop = replace(broker, placed.legs[1].id, {"stop_price": "97"})
    assert new_stop.order_class == "bracket" and new_stop.stop_price == D("97")
    assert [leg.id for leg in broker.get_order(placed.id).legs][1] == new_stop.id
    assert broker.positions()[0].qty_available == 0
    broker.set_price("AAPL", D("96"))
    broker.step()
    assert broker.get_order(new_stop.id).status == "filled"
    assert broker.get_order(placed.legs[0].id).status == "canceled"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"take_profit": {"limit_price": D("100")}}, "take_profit.limit_price must be >= base_price + 0.01"),
        ({"stop_loss": {"stop_price": D("100")}}, "stop_loss.stop_price must be <= base_price - 0.01"),
        (
            {"side": "sell", "take_profit": {"limit_price": D("95")}, "stop_loss": {"stop_price": D("95")}},
            "stop_loss.stop_price must be >= base_price + 0.01",
        ),
        ({"type": "limit", "limit_price": D("90")}, "stop_loss.stop_price must be <= base_price - 0.01"),
        ({"stop_loss": None}, "stop_loss.stop_price is required"),
        ({"take_profit": {"stop_price": D("101")}}, "take_profit.limit_price is required"),
        ({"time_in_force": "ioc"}, "bracket orders must be DAY or GTC orders"),
        (
            {"type": "limit", "limit_price": D("100"), "time_in_force": "day", "extended_hours": True},
            "extended hours are not supported",
        ),
        ({"qty": D("1.5"), "time_in_force": "day"}, "fractional orders are not supported"),
        ({"order_class": "oto", "take_profit": None, "stop_loss": None}, "oto orders require take_profit or stop_loss"),
        ({"order_class": "oco", "type": "limit"}, "oco orders must be exit orders"),
        ({"order_class": "spread"}, "invalid order_class"),
        ({"stop_loss": {"stop_price": D("94.999")}}, "sub-penny"),
    ],
)
def test_group_orders_are_refused_as_alpaca_refuses_them(fields: dict[str, Any], message: str) -> None:
    broker, events = make_broker()
    broker.set_price("AAPL", D("100"))
    error = refused(broker, bracket(**fields))
    assert error.status == 422 and message in error.message
    assert broker.order_count() == 0 and events == []


def test_group_orders_that_would_close_or_open_the_wrong_way_are_refused() -> None:
    broker, _ = make_broker()
    broker.set_price("AAPL", D("100"))
    submit(broker, order(qty=10))
    broker.step()
    error = refused(
        broker, bracket(side="sell", take_profit={"limit_price": D("95")}, stop_loss={"stop_price": D("105")})
    )
    assert (error.code, error.message) == (42210000, "bracket orders must be entry orders")
    error = refused(
        broker,
        order(
            side="sell",
            qty=10,
            type="market",
            order_class="oco",
            take_profit={"limit_price": D("110")},
            stop_loss={"stop_price": D("90")},
        ),
    )
    assert error.message == "oco orders must be limit orders"


def test_an_order_placed_while_flat_never_takes_shares_held_for_closing_orders() -> None:
    """Found by the books property: a short sale resting from before a long was opened must not sell
    the shares a closing order holds (qty_available went to -3)."""
    broker, _ = make_broker()
    broker.set_price("AAPL", D("100"))
    short = submit(broker, order(side="sell", type="limit", limit_price=D("101"), qty=3, time_in_force="gtc"))
    submit(broker, order(qty=5))
    broker.step()
    submit(broker, order(side="sell", type="limit", limit_price=D("150"), qty=4, time_in_force="gtc"))
    broker.set_price("AAPL", D("101"))
    broker.step()
    assert broker.get_order(short.id).filled_qty == D("1")  # the one share not held
    assert broker.position_qty("AAPL") == 4 and broker.positions()[0].qty_available == 0


# ------------------------------------------------------------------ the tape and its bars


def test_prints_make_the_recorded_bar_and_a_bar_without_prints_is_none() -> None:
    clock = Clock()
    broker = PaperBroker(seed=1, now=clock, volatility=0.0, bar_seconds=0.5)
    market = broker.market
    ticker = market.ticker("AAPL")
    start = market.bar_start(market.bar_index(clock.at) + 1)
    for at_ms, price, size in ((10, "10", 100), (100, "12", 50), (200, "9", 50), (300, "11", 100)):
        ticker.price = D(price)
        market.record(ticker, D(size), start + timedelta(milliseconds=at_ms))
    clock.at = start + timedelta(seconds=2)
    index = market.bar_index(start)
    bar = broker.recorded_bar("AAPL", index)
    assert bar is not None and bar.t == start
    assert (bar.o, bar.h, bar.l, bar.c, bar.v, bar.n) == (10, 12, 9, 11, 300, 4)
    assert bar.vw == (D(1000 + 600 + 450 + 1100) / 300).quantize(D("0.0001"))
    assert broker.recorded_bar("AAPL", index + 1) is None  # nothing printed: no bar, as on Alpaca
    (served,) = broker.bars(["AAPL"], "1Min", start=start, end=start).bars["AAPL"]
    assert served == bar  # the bars API serves the recorded bar: one series
    late = broker.report_late("AAPL", index)
    assert late is not None and (late.c, late.v, late.n) == (bar.c, bar.v + 100, bar.n + 1)
    assert broker.bars(["AAPL"], "1Min", start=start, end=start).bars["AAPL"] == [late]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.decimals("0.01", "10000", places=2), st.integers(1, 10_000)),
        min_size=1,
        max_size=50,
    )
)
def test_a_recorded_bar_is_consistent(prints: list[tuple[Decimal, int]]) -> None:
    clock = Clock()
    broker = PaperBroker(seed=1, now=clock, volatility=0.0)
    ticker = broker.market.ticker("X")
    start = broker.market.bar_start(broker.market.bar_index(clock.at) + 1)
    for i, (price, size) in enumerate(prints):
        ticker.price = price
        broker.market.record(ticker, D(size), start + timedelta(milliseconds=i))
    clock.at = start + timedelta(minutes=2)
    bar = broker.recorded_bar("X", broker.market.bar_index(start))
    assert bar is not None
    assert bar.l <= min(bar.o, bar.c) and bar.h >= max(bar.o, bar.c)
    assert bar.l - D("0.0001") <= bar.vw <= bar.h + D("0.0001")
    assert bar.v == sum(s for _, s in prints) and bar.n == len(prints)


def test_crypto_walks_around_the_clock_in_fractions_of_a_coin() -> None:
    clock = Clock()
    clock.at = datetime(2026, 3, 14, 12, 0, tzinfo=UTC)  # a Saturday: stocks do not move
    broker = PaperBroker(seed=2, now=clock)
    stock, coin = broker.price("AAPL"), broker.price("BTC/USD")
    prints: list[tuple[str, Decimal]] = []
    broker.trade_listeners.append(lambda symbol, price, size, at: prints.append((symbol, size)))
    for _ in range(50):
        broker.step()
    assert broker.price("AAPL") == stock and {s for s, _ in prints} == {"BTC/USD"}
    assert broker.price("BTC/USD") != coin and any(size < 1 for _, size in prints)
    recorded = broker.market.ticker("BTC/USD").minutes.values()
    assert sum(m.v for m in recorded) == sum(size for _, size in prints)  # every print is in a bar


def test_crypto_orders_are_gtc_or_ioc_fractional_and_never_short() -> None:
    broker, _ = make_broker()
    broker.set_price("BTC/USD", D("95000"))
    placed = submit(broker, order("BTC/USD", qty="0.015", time_in_force="gtc"))
    broker.step()
    assert broker.get_order(placed.id).status == "filled" and broker.position_qty("BTC/USD") == D("0.015")
    for fields, message in (
        ({"qty": "0.01", "time_in_force": "day"}, "invalid crypto time_in_force"),
        ({"qty": "0.01", "time_in_force": "gtc", "type": "stop", "stop_price": "90000"}, "invalid order type"),
    ):
        err = refused(broker, order("BTC/USD", **fields))
        assert err.status == 422 and message in err.message
    err = refused(broker, order("ETH/USD", qty="1", side="sell", time_in_force="gtc"))
    assert err.status == 403 and "sold short" in err.message
    closing = broker.close_position("BTC/USD")
    assert (closing.time_in_force, closing.qty) == ("gtc", D("0.015"))
