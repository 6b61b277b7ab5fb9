"""Order entry's pure pieces: validation, client ids, the live guard, polled events.

The strongest check here is the agreement property: every order our local
validation lets through is one the sandbox's matching engine (which follows
Alpaca's rules independently) accepts too, so a locally valid order can only
be refused for money or market reasons, never for its shape.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from alpaca_cli import orders
from alpaca_cli.domain import Order, OrderRequest
from alpaca_cli.errors import UsageError
from alpaca_cli.sandbox.engine import PaperBroker
from alpaca_cli.sandbox.model import BrokerError
from alpaca_cli.sandbox.orderrequest import parse_order

NOW = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)


def test_a_plain_market_order_gets_a_fresh_client_id() -> None:
    request = orders.validate_order("aapl", "BUY", qty="10")
    assert (request.symbol, request.side, request.type, request.time_in_force) == ("AAPL", "buy", "market", "day")
    assert request.qty == Decimal(10) and request.notional is None
    assert request.client_order_id.startswith(orders.CLIENT_ID_PREFIX)
    assert orders.validate_order("AAPL", "buy", qty="10").client_order_id != request.client_order_id


def test_every_order_type_with_its_prices() -> None:
    limit = orders.validate_order(
        "MSFT", "sell", qty="3", order_type="limit", limit_price="410.25", time_in_force="gtc"
    )
    assert (limit.type, limit.limit_price, limit.time_in_force) == ("limit", Decimal("410.25"), "gtc")
    stop = orders.validate_order("MSFT", "sell", qty="3", order_type="stop", stop_price="0.5123")
    assert stop.stop_price == Decimal("0.5123")
    both = orders.validate_order("SPY", "buy", qty="1", order_type="stop-limit", stop_price="500", limit_price="501")
    assert (both.type, both.stop_price, both.limit_price) == ("stop_limit", Decimal(500), Decimal(501))
    trail = orders.validate_order("SPY", "sell", qty="1", order_type="trailing_stop", trail_percent="1.5")
    assert (trail.trail_percent, trail.trail_price) == (Decimal("1.5"), None)
    dollars = orders.validate_order("BRK.B", "buy", notional="250.50")
    assert (dollars.symbol, dollars.notional, dollars.qty) == ("BRK.B", Decimal("250.50"), None)
    fractional = orders.validate_order("AAPL", "buy", qty="0.123456789", order_type="limit", limit_price="1")
    assert fractional.qty == Decimal("0.123456789")
    extended = orders.validate_order("AAPL", "buy", qty="1", order_type="limit", limit_price="1", extended_hours=True)
    assert extended.extended_hours
    assert orders.validate_order("AAPL", "buy", qty="1", client_order_id="x" * 128).client_order_id == "x" * 128


# (arguments, a fragment the one error line must contain)
BAD: list[tuple[dict[str, Any], str]] = [
    ({"qty": "1", "notional": "10"}, "mutually exclusive"),
    ({}, "--qty N"),
    ({"qty": "0"}, "greater than zero"),
    ({"qty": "-5"}, "positive"),
    ({"qty": "1e3"}, "plain decimal"),
    ({"qty": "NaN"}, "plain decimal"),
    ({"qty": "ten"}, "plain decimal"),
    ({"qty": "1.1234567891"}, "9 decimals"),
    ({"qty": "1234567.123456789"}, "15 significant digits"),
    ({"notional": "0.5"}, "at least $1"),
    ({"notional": "10.001"}, "2 decimals"),
    ({"notional": "10", "order_type": "limit", "limit_price": "5"}, "--notional orders must be market"),
    ({"notional": "10", "time_in_force": "gtc"}, "--tif day"),
    ({"qty": "1", "order_type": "limit"}, "needs --limit-price"),
    ({"qty": "1", "order_type": "stop"}, "needs --stop-price"),
    ({"qty": "1", "order_type": "stop_limit", "stop_price": "5"}, "needs --limit-price"),
    ({"qty": "1", "order_type": "stop_limit", "limit_price": "5"}, "needs --stop-price"),
    ({"qty": "1", "order_type": "trailing_stop"}, "exactly one of --trail-percent"),
    ({"qty": "1", "order_type": "trailing_stop", "trail_percent": "1", "trail_price": "2"}, "exactly one"),
    ({"qty": "1", "limit_price": "5"}, "--limit-price does not apply to a market"),
    ({"qty": "1", "stop_price": "5"}, "--stop-price does not apply"),
    ({"qty": "1", "trail_price": "5"}, "--trail-price does not apply"),
    ({"qty": "1", "order_type": "limit", "limit_price": "5", "stop_price": "4"}, "does not apply to a limit"),
    ({"qty": "1", "order_type": "limit", "limit_price": "10.005"}, "at most 2"),
    ({"qty": "1", "order_type": "limit", "limit_price": "0.12345"}, "at most 4"),
    ({"qty": "1", "order_type": "trailing_stop", "trail_percent": "100"}, "below 100"),
    ({"qty": "1", "order_type": "trailing_stop", "trail_price": "1", "time_in_force": "ioc"}, "day or gtc"),
    ({"qty": "0.5", "time_in_force": "gtc"}, "fractional"),
    ({"qty": "0.5", "order_type": "stop", "stop_price": "5"}, "fractional"),
    ({"qty": "1", "extended_hours": True}, "--extended-hours"),
    ({"qty": "1", "order_type": "limit", "limit_price": "5", "time_in_force": "gtc", "extended_hours": True}, "day"),
    ({"qty": "1", "order_type": "stop", "stop_price": "5", "time_in_force": "opg"}, "auction"),
    ({"qty": "1", "order_type": "bracket"}, "unknown order type"),
    ({"qty": "1", "time_in_force": "week"}, "unknown time in force"),
    ({"qty": "1", "client_order_id": "x" * 129}, "at most 128"),
    ({"qty": "1", "client_order_id": ""}, "must not be empty"),
    ({"qty": "1", "client_order_id": "has space"}, "without spaces"),
]


@pytest.mark.parametrize(("kwargs", "fragment"), BAD, ids=[f"bad{i}" for i in range(len(BAD))])
def test_bad_inputs_give_one_clear_usage_error(kwargs: dict[str, Any], fragment: str) -> None:
    with pytest.raises(UsageError) as raised:
        orders.validate_order("AAPL", "buy", **kwargs)
    assert fragment in raised.value.line()
    assert "\n" not in raised.value.line()
    assert raised.value.exit_code == 2


@pytest.mark.parametrize("symbol", ["", "123", "AAPL!", "TOOLONGSYM", "BTC/USD", "A B", "AAPL.", ".B", "AA..B"])
def test_symbol_shapes(symbol: str) -> None:
    with pytest.raises(UsageError):
        orders.validate_order(symbol, "buy", qty="1")


@pytest.mark.parametrize("side", ["long", "", "b", "buyy"])
def test_sides(side: str) -> None:
    with pytest.raises(UsageError, match="unknown side"):
        orders.validate_order("AAPL", side, qty="1")


@pytest.mark.parametrize(
    ("price", "ok"),
    [
        ("1", True),
        ("1.00", True),
        ("1.01", True),
        ("1.001", False),
        ("0.9999", True),
        ("0.99999", False),
        ("250.5", True),
        ("250.505", False),
        ("0.01", True),
    ],
)
def test_tick_rule(price: str, ok: bool) -> None:
    value = Decimal(price)
    if ok:
        orders.check_price(value, "--limit-price")
    else:
        with pytest.raises(UsageError):
            orders.check_price(value, "--limit-price")


@given(st.decimals(min_value=Decimal("0.000000001"), max_value=Decimal(10**6), places=9))
def test_accepted_amounts_survive_the_sdks_float_encoding(value: Decimal) -> None:
    try:
        amount = orders.parse_amount(format(value, "f"), "--qty")
    except UsageError:
        return
    assert amount is not None and Decimal(repr(float(amount))) == amount


@given(st.integers(min_value=0, max_value=50))
def test_generated_client_ids_are_unique_and_acceptable(n: int) -> None:
    ids = {orders.new_client_order_id() for _ in range(n + 2)}
    assert len(ids) == n + 2
    for cid in ids:
        assert orders.check_client_order_id(cid) == cid and len(cid) <= orders.MAX_CLIENT_ORDER_ID


# --------------------------------------------------------------------------- agreement with the engine

AMOUNTS = st.one_of(
    st.decimals(min_value=Decimal("0.0001"), max_value=Decimal(900), places=4).map(str),
    st.sampled_from(["0", "-1", "1.005", "0.00001", "100", "2.5", "99.99", "0.5"]),
)


def _body(request: OrderRequest) -> dict[str, Any]:
    """The JSON body the bridge sends for a request (decimals as strings here)."""
    body: dict[str, Any] = {
        "symbol": request.symbol,
        "side": request.side,
        "type": request.type,
        "time_in_force": request.time_in_force,
        "client_order_id": request.client_order_id,
    }
    for name in ("qty", "notional", "limit_price", "stop_price", "trail_percent", "trail_price"):
        value = getattr(request, name)
        if value is not None:
            body[name] = str(value)
    if request.extended_hours:
        body["extended_hours"] = True
    return body


def _maybe(draw: st.DrawFn, likely: bool, whole: bool = False) -> str | None:
    """Nearly always a value when the order type wants the field, rarely when not;
    mostly well-formed (`whole`: a whole number), sometimes anything."""
    present = draw(st.sampled_from([likely] * 9 + [not likely]))
    if not present:
        return None
    if draw(st.sampled_from([True, True, True, False])):
        if whole:
            return str(draw(st.integers(1, 500)))
        return str(draw(st.decimals(min_value=Decimal("1"), max_value=Decimal(900), places=2)))
    return draw(AMOUNTS)


@st.composite
def order_inputs(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(orders.ORDER_TYPES))
    by_qty = draw(st.booleans())
    trail = draw(st.sampled_from(["trail_percent", "trail_price"]))
    return {
        "side": draw(st.sampled_from(["buy", "sell"])),
        "order_type": kind,
        "time_in_force": draw(st.sampled_from(["day", "day", "day", "gtc", *orders.TIME_IN_FORCE])),
        "qty": _maybe(draw, by_qty, whole=True),
        "notional": _maybe(draw, not by_qty and kind == "market"),
        "limit_price": _maybe(draw, kind in ("limit", "stop_limit")),
        "stop_price": _maybe(draw, kind in ("stop", "stop_limit")),
        "trail_percent": _maybe(draw, kind == "trailing_stop" and trail == "trail_percent"),
        "trail_price": _maybe(draw, kind == "trailing_stop" and trail == "trail_price"),
        "extended_hours": draw(st.sampled_from([False] * 5 + [True])),
    }


@settings(max_examples=500, deadline=None)
@given(order_inputs())
def test_locally_valid_orders_pass_the_brokers_shape_rules(inputs: dict[str, Any]) -> None:
    try:
        request = orders.validate_order("AAPL", **inputs)
    except UsageError:
        event("refused locally")
        return
    event(f"valid {request.type}")
    broker = PaperBroker(seed=1, cash=Decimal(10**9), now=lambda: NOW)
    broker.set_price("AAPL", Decimal(10))
    if request.side == "sell":
        broker.submit(
            parse_order({"symbol": "AAPL", "side": "buy", "type": "market", "time_in_force": "day", "qty": "1000"})
        )
        broker.step()
    try:
        order = broker.submit(parse_order(_body(request)))
    except BrokerError as refused:
        # Only money and position limits may refuse a well-shaped order.
        assert refused.status == 403, refused.message
        return
    assert order.client_order_id == request.client_order_id


# --------------------------------------------------------------------------- the live guard


@pytest.mark.parametrize("live_allowed", [False, True])
@pytest.mark.parametrize("yes", [False, True])
@pytest.mark.parametrize("interactive", [False, True])
def test_paper_and_sandbox_always_go(live_allowed: bool, yes: bool, interactive: bool) -> None:
    assert orders.live_guard(is_live=False, live_allowed=live_allowed, yes=yes, interactive=interactive) == "go"


@pytest.mark.parametrize("yes", [False, True])
@pytest.mark.parametrize("interactive", [False, True])
def test_live_without_the_flag_never_goes(yes: bool, interactive: bool) -> None:
    with pytest.raises(UsageError, match="LIVE"):
        orders.live_guard(is_live=True, live_allowed=False, yes=yes, interactive=interactive)


def test_live_with_the_flag_needs_a_confirmation_or_yes() -> None:
    assert orders.live_guard(is_live=True, live_allowed=True, yes=True, interactive=False) == "go"
    assert orders.live_guard(is_live=True, live_allowed=True, yes=True, interactive=True) == "go"
    assert orders.live_guard(is_live=True, live_allowed=True, yes=False, interactive=True) == "confirm"
    with pytest.raises(UsageError, match="not a terminal"):
        orders.live_guard(is_live=True, live_allowed=True, yes=False, interactive=False)


@pytest.mark.parametrize(
    ("kwargs", "text"),
    [
        ({"qty": "10"}, "buy 10 AAPL at market (day)"),
        ({"notional": "500"}, "buy $500 of AAPL at market (day)"),
        (
            {"qty": "1", "order_type": "limit", "limit_price": "187.5", "extended_hours": True},
            "buy 1 AAPL limit 187.5 (day, extended hours)",
        ),
        (
            {"qty": "1", "order_type": "stop_limit", "stop_price": "9", "limit_price": "9.5", "time_in_force": "gtc"},
            "buy 1 AAPL stop 9 limit 9.5 (gtc)",
        ),
        ({"qty": "2", "order_type": "trailing_stop", "trail_percent": "1.5"}, "buy 2 AAPL trailing stop 1.5% (day)"),
        ({"qty": "2", "order_type": "trailing_stop", "trail_price": "3"}, "buy 2 AAPL trailing stop $3 (day)"),
    ],
)
def test_orders_are_described_in_one_line(kwargs: dict[str, Any], text: str) -> None:
    assert orders.describe(orders.validate_order("AAPL", "buy", **kwargs)) == text


def test_the_live_prompt_names_account_side_size_and_symbol() -> None:
    request = orders.validate_order("TSLA", "sell", qty="7", order_type="limit", limit_price="250")
    text = orders.confirmation_text("PA123456", orders.describe(request))
    for word in ("LIVE", "PA123456", "sell", "7", "TSLA", "250"):
        assert word in text


# --------------------------------------------------------------------------- polled events


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


def test_polling_turns_state_changes_into_events() -> None:
    new = _order("new", "0", None)
    part = _order("partially_filled", "40", "10")
    done = _order("filled", "100", "10.6")
    assert [u.event for u in orders.polled_events(None, new)] == ["new"]
    first = orders.polled_events(new, part)
    assert [(u.event, u.qty, u.price, u.source) for u in first] == [
        ("partial_fill", Decimal(40), Decimal(10), "reconcile")
    ]
    last = orders.polled_events(part, done)
    assert [(u.event, u.qty, u.price) for u in last] == [("fill", Decimal(60), Decimal(11))]
    assert orders.polled_events(done, done) == []
    canceled = _order("canceled", "40", "10")
    assert [u.event for u in orders.polled_events(part, canceled)] == ["canceled"]


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
        for update in orders.polled_events(before, after):
            assert update.qty is not None and update.price is not None
            seen_qty += update.qty
            seen_value += update.qty * update.price
        before = after
    assert seen_qty == total
    assert abs(seen_value - value) < Decimal("0.001") * len(fills)


@pytest.mark.parametrize(
    ("status", "code"),
    [
        ("filled", 0),
        ("new", 124),
        ("partially_filled", 124),
        ("accepted", 124),
        ("canceled", 1),
        ("rejected", 1),
        ("expired", 1),
    ],
)
def test_wait_exit_codes(status: str, code: int) -> None:
    assert orders.wait_exit_code(_order(status, "0", None)) == code
