"""Hypothesis strategies for the domain types (`alpaca_cli.domain`) and the core.

Import them as `from strategies import ...` (pytest puts `tests/` on the path).
Quantities are `Decimal`, often fractional (up to 9 places, as Alpaca's
fractional shares); symbols come from a small pool so that orders collide on
positions. Building blocks:

- `quantities`, `prices`, `timestamps`, `order_ids`, `symbols`
- `accounts()`, `positions()`, `orders()`, `trade_updates()`, `snapshots()`
- `lifecycles()`: the consistent event history of one order (cumulative fills
  only grow, ends in at most one final event)
- `histories()`: several lifecycles interleaved in one plausible stream
- `states()`: a state built from a snapshot plus a history
- `drift_cases()`: (local state, a later broker snapshot, whether something
  other than our orders moved positions) for reconciliation properties
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import strategies as st

from alpaca_cli.core import State, apply_all, initial_state
from alpaca_cli.domain import Account, Order, Position, Snapshot, TradeUpdate

ACCOUNT_ID = "0b8f0b9e-6a47-4ef3-a9e8-5b0c1d2e3f40"
SYMBOLS = ("AAPL", "MSFT", "SPY", "TSLA", "BRK.B")
EVENT_NAMES = (
    "new",
    "accepted",
    "pending_new",
    "partial_fill",
    "fill",
    "canceled",
    "expired",
    "rejected",
    "done_for_day",
    "replaced",
    "stopped",
    "pending_cancel",
    "pending_replace",
    "calculated",
    "suspended",
    "restated",
    "order_cancel_rejected",
    "order_replace_rejected",
    "some_future_event",
)
OPEN_STATUSES = ("new", "accepted", "pending_new", "partially_filled", "pending_cancel")
# How a lifecycle can end, with the order status it ends in (None: still open).
ENDINGS = {
    None: None,
    "fill": "filled",
    "canceled": "canceled",
    "expired": "expired",
    "rejected": "rejected",
    "done_for_day": "done_for_day",
    "replaced": "replaced",
}

symbols = st.sampled_from(SYMBOLS)
order_ids = st.uuids().map(str)
quantities = st.one_of(
    st.integers(1, 500).map(Decimal),
    st.decimals(min_value=Decimal("0.01"), max_value=Decimal(500), places=2),
    st.decimals(min_value=Decimal("0.000000001"), max_value=Decimal(50), places=9),
)
prices = st.one_of(
    st.decimals(min_value=Decimal("1"), max_value=Decimal(2000), places=2),
    st.decimals(min_value=Decimal("0.0001"), max_value=Decimal(1), places=4),
)
timestamps = st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2027, 1, 1), timezones=st.just(UTC))


def fraction_of(total: Decimal, percent: int) -> Decimal:
    """`percent`% of `total`, exactly (no float)."""
    return total * percent / 100


@st.composite
def accounts(draw: st.DrawFn, *, account_id: str = ACCOUNT_ID) -> Account:
    return Account(
        id=account_id,
        account_number=draw(st.sampled_from(["PA1234567", "PA7654321"])),
        status=draw(st.sampled_from(["ACTIVE", "ACCOUNT_UPDATED", "INACTIVE"])),
        trading_blocked=draw(st.booleans()),
        account_blocked=draw(st.booleans()),
        transfers_blocked=draw(st.booleans()),
        trade_suspended_by_user=draw(st.booleans()),
    )


@st.composite
def positions(draw: st.DrawFn, *, symbol: str | None = None) -> Position:
    return Position(
        symbol=symbol if symbol is not None else draw(symbols),
        qty=draw(quantities),
        side=draw(st.sampled_from(["long", "short"])),
        avg_entry_price=draw(prices),
    )


@st.composite
def orders(
    draw: st.DrawFn,
    *,
    status: str | None = None,
    filled_percent: int | None = None,
    order_id: str | None = None,
) -> Order:
    """An order; its `filled_qty` is `filled_percent`% of `qty` (drawn if None)."""
    qty = draw(quantities)
    percent = filled_percent if filled_percent is not None else draw(st.integers(0, 99))
    filled = fraction_of(qty, percent)
    submitted = draw(timestamps)
    return Order(
        id=order_id if order_id is not None else draw(order_ids),
        client_order_id=draw(order_ids),
        symbol=draw(symbols),
        side=draw(st.sampled_from(["buy", "sell"])),
        type=draw(st.sampled_from(["market", "limit", "stop", "stop_limit"])),
        time_in_force=draw(st.sampled_from(["day", "gtc"])),
        status=status if status is not None else draw(st.sampled_from(OPEN_STATUSES)),
        submitted_at=submitted,
        qty=qty,
        filled_qty=filled,
        filled_avg_price=draw(prices) if filled > 0 else None,
        limit_price=draw(st.none() | prices),
        updated_at=submitted,
    )


@st.composite
def trade_updates(draw: st.DrawFn, *, order: Order | None = None) -> TradeUpdate:
    """Any event, with any event name (including one this tool does not know)."""
    the_order = order if order is not None else draw(orders())
    return TradeUpdate(
        event=draw(st.sampled_from(EVENT_NAMES)),
        order=the_order,
        timestamp=draw(timestamps),
        execution_id=draw(st.none() | order_ids),
        price=draw(st.none() | prices),
        qty=draw(st.none() | quantities),
        reason=draw(st.none() | st.sampled_from(["insufficient buying power", "TOO_LATE_TO_CANCEL"])),
    )


@st.composite
def snapshots(draw: st.DrawFn, *, max_orders: int = 8) -> Snapshot:
    held = draw(st.lists(positions(), max_size=len(SYMBOLS), unique_by=lambda p: p.symbol))
    return Snapshot(
        account=draw(accounts()),
        positions=tuple(held),
        open_orders=tuple(draw(st.lists(orders(), max_size=max_orders, unique_by=lambda o: o.id))),
        taken_at=draw(timestamps),
    )


@st.composite
def lifecycles(draw: st.DrawFn, *, order: Order | None = None) -> list[TradeUpdate]:
    """The events of one order from `new` (or from where `order` stands):
    partial fills with growing cumulative quantity, maybe a cancel request,
    then at most one final event. Fills carry an execution id most of the time."""
    base = order if order is not None else draw(orders(status="new", filled_percent=0))
    at = draw(timestamps)
    step = timedelta(milliseconds=draw(st.integers(1, 5000)))
    events: list[TradeUpdate] = []

    def emit(
        name: str,
        status: str,
        filled: Decimal,
        fill: tuple[Decimal, Decimal, str | None] | None = None,
    ) -> None:
        nonlocal at
        at += step
        price, qty, execution_id = fill if fill is not None else (None, None, None)
        current = dataclasses.replace(
            base,
            status=status,
            filled_qty=filled,
            filled_avg_price=(price or base.filled_avg_price) if filled > 0 else None,
            updated_at=at,
        )
        events.append(
            TradeUpdate(
                event=name,
                order=current,
                timestamp=at,
                execution_id=execution_id,
                price=price,
                qty=qty,
            )
        )

    if order is None:
        emit("new", "new", Decimal(0))
    assert base.qty is not None
    filled = base.filled_qty
    for percent in sorted(set(draw(st.lists(st.integers(1, 99), max_size=3)))):
        cumulative = fraction_of(base.qty, percent)
        if cumulative > filled:
            emit("partial_fill", "partially_filled", cumulative, _fill(draw, cumulative - filled))
            filled = cumulative
    if draw(st.booleans()):
        emit("pending_cancel", "pending_cancel", filled)
    ending = draw(st.sampled_from([e for e in ENDINGS if e != "rejected" or filled == 0]))
    if ending == "fill":
        emit("fill", "filled", base.qty, _fill(draw, base.qty - filled))
    elif ending is not None:
        emit(ending, ENDINGS[ending] or ending, filled)
    return events


def _fill(draw: st.DrawFn, qty: Decimal) -> tuple[Decimal, Decimal, str | None]:
    """(price, qty, execution id) of one fill; the id is sometimes missing."""
    return draw(prices), qty, draw(st.one_of(st.none(), order_ids, order_ids))


@st.composite
def histories(draw: st.DrawFn, *, max_orders: int = 5) -> list[list[TradeUpdate]]:
    """Lifecycles of distinct orders (each list in its own order)."""
    return draw(st.lists(lifecycles(), max_size=max_orders, unique_by=lambda lc: lc[0].order.id))


def interleave(draw: st.DrawFn, lifecycles_: list[list[TradeUpdate]]) -> list[TradeUpdate]:
    """One stream holding every lifecycle, each kept in its own order."""
    queues = [list(lc) for lc in lifecycles_ if lc]
    stream: list[TradeUpdate] = []
    while queues:
        i = draw(st.integers(0, len(queues) - 1))
        stream.append(queues[i].pop(0))
        if not queues[i]:
            queues.pop(i)
    return stream


@st.composite
def states(draw: st.DrawFn) -> State:
    """A state from a snapshot, moved on by a stream of events."""
    start = initial_state(draw(snapshots()))
    return apply_all(start, interleave(draw, draw(histories())))


@st.composite
def drift_cases(draw: st.DrawFn) -> tuple[State, Snapshot, bool]:
    """Local state from an earlier snapshot, and the broker's later snapshot.

    In between, every order local state has open either stayed open (maybe
    filled more) or ended (filled, canceled, expired, rejected, replaced,
    done for day, some after more fills), and orders local state never saw
    appeared. Broker positions are local's moved by exactly those fills,
    unless the third item is True: then some position also moved otherwise.
    """
    earlier = draw(snapshots())
    local = initial_state(earlier)
    later = draw(timestamps)
    signed: dict[str, Decimal] = {p.symbol: p.signed_qty for p in earlier.positions}

    def moved(order: Order, more: Decimal) -> None:
        sign = -1 if order.side == "sell" else 1
        signed[order.symbol] = signed.get(order.symbol, Decimal(0)) + sign * more

    still_open: list[Order] = []
    final: list[Order] = []
    for order in earlier.open_orders:
        assert order.qty is not None
        outcome = draw(st.sampled_from(["same", "more", *[e for e in ENDINGS if e]]))
        if outcome == "fill":
            filled, status = order.qty, "filled"
        elif outcome in ("same", "rejected"):
            filled, status = order.filled_qty, order.status
        else:
            percent = draw(st.integers(0, 99))
            filled = max(order.filled_qty, fraction_of(order.qty, percent))
            status = "partially_filled" if outcome == "more" and filled > 0 else order.status
        if outcome not in ("same", "more"):
            status = ENDINGS[outcome]  # type: ignore[assignment]
        moved(order, filled - order.filled_qty)
        now = dataclasses.replace(
            order,
            status=status,
            filled_qty=filled,
            filled_avg_price=draw(prices) if filled > 0 else None,
            updated_at=later,
            filled_at=later if status == "filled" else None,
            canceled_at=later if status == "canceled" else None,
        )
        (final if now.is_final else still_open).append(now)
    appeared = draw(st.lists(orders(), max_size=3, unique_by=lambda o: o.id))
    for order in appeared:
        moved(order, order.filled_qty)
    external = draw(st.booleans())
    if external:
        symbol = draw(symbols)
        signed[symbol] = signed.get(symbol, Decimal(0)) + draw(quantities)
    held = tuple(
        Position(
            symbol=symbol,
            qty=abs(qty),
            side="long" if qty > 0 else "short",
            avg_entry_price=draw(prices),
        )
        for symbol, qty in sorted(signed.items())
        if qty != 0
    )
    snapshot = Snapshot(
        account=draw(accounts()),
        positions=held,
        open_orders=tuple(still_open + appeared),
        taken_at=later,
        final_orders=tuple(final),
    )
    return local, snapshot, external
