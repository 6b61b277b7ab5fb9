"""Recovery: the order events a gap swallowed, rebuilt from what the broker shows.

The stream is latency and the broker is truth, so whatever path learns that
something was missed (a reconnection's snapshot, a poll while the stream is
down, `reconcile`, a followed order that is polled, a live fill that jumps)
rebuilds the missing events here, `source="reconcile"`, to go through the
same `apply` and the same exactly-once check as live ones:

- `missed_events`: orders open on one side (fills with only the missed
  quantity, the final event, orders never heard of);
- `unseen_closed_events`: orders that opened and closed while nobody listened;
- `recover`: both, in submission order;
- `missed_part`: the fill a live fill jumps over;
- `polled_events`: what turned one look at an order into the next.

A recovered fill's price is the average of the missed shares alone, from the
two cumulative averages (`fill_price_between`), rounded once (`price_places`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from alpaca_cli.core.diff import broker_orders
from alpaca_cli.core.errors import check_account
from alpaca_cli.core.state import OrderBook, OrderRecord, State, known_fill
from alpaca_cli.domain import FILL_EVENTS, Activity, Order, Snapshot, TradeUpdate
from alpaca_cli.text import utc

PRICE_PLACES = 6  # decimal places of a price derived from two averages
_PRICE_STEP = Decimal(1).scaleb(-PRICE_PLACES)
_ZERO = Decimal(0)
# An order status a poll can see, and the fill event it implies.
_STATUS_FILL = {"filled": "fill", "partially_filled": "partial_fill"}


def fill_price_between(
    before_qty: Decimal, before_avg: Decimal | None, after_qty: Decimal, after_avg: Decimal | None
) -> Decimal | None:
    """The average price of the shares filled between two looks at an order's cumulative fill.

    (after_qty × after_avg − before_qty × before_avg) / (after_qty − before_qty),
    rounded once (`price_places`). When it cannot be told (no average before, or
    averages too rounded to give a positive price), the order's cumulative
    average stands in: exact when one look saw one execution. None when nothing
    was filled in between or no price is known.
    """
    if after_avg is None or after_qty <= before_qty:
        return None
    if before_qty <= 0 or before_avg is None:
        return after_avg
    price = (after_qty * after_avg - before_qty * before_avg) / (after_qty - before_qty)
    return price_places(price) if price > 0 else after_avg


def price_places(price: Decimal) -> Decimal:
    """A derived price to `PRICE_PLACES` places, half-even, when it has more: the one rounding
    of a price the broker did not state (the broker's own averages carry no more)."""
    return price.quantize(_PRICE_STEP) if price.as_tuple().exponent < -PRICE_PLACES else price


def recovered(
    name: str, order: Order, at: datetime, *, qty: Decimal | None = None, price: Decimal | None = None
) -> TradeUpdate:
    """An event rebuilt from broker state rather than heard (`source="reconcile"`)."""
    return TradeUpdate(name, order, at, price=price, qty=qty, source="reconcile")


def missed_events(local: State, snapshot: Snapshot) -> list[TradeUpdate]:
    """The order events that bring local state to broker truth, `source="reconcile"`.

    Per order, in order: a fill or partial fill carrying only the missed
    quantity (`qty`) and the order's cumulative fill; then the final event
    (canceled, expired, rejected, ...) when the order ended otherwise than
    filled. Orders the broker lists open but local state never heard of get a
    `new` event, then a `partial_fill` for what they already filled. Orders
    are taken by submission time, then id.
    """
    check_account(local.account_id, snapshot.account.id)
    broker_open, final = broker_orders(snapshot)
    found: list[tuple[datetime, str, list[TradeUpdate]]] = []
    for record in local.open_orders.values():
        order = broker_open.get(record.id) or final.get(record.id)
        if order is None:
            continue
        events = _events_for_known(record, order, snapshot.taken_at)
        if events:
            found.append((utc(order.submitted_at), order.id, events))
    for order in broker_open.values():
        if order.id in local.open_orders or order.id in local.closed_orders:
            continue
        found.append((utc(order.submitted_at), order.id, _events_for_unknown(order, snapshot)))
    found.sort(key=lambda item: (item[0], item[1]))
    return [event for _, _, events in found for event in events]


def unseen_closed_events(state: State, snapshot: Snapshot) -> list[TradeUpdate]:
    """Events of orders that opened and closed while nobody listened (`missed_events`
    covers only orders that are open on one side): `new`, the fill, and the final event."""
    broker_open = {o.id for o in snapshot.open_orders}
    events: list[TradeUpdate] = []
    for order in snapshot.final_orders:
        oid = order.id
        if not order.is_final or oid in broker_open or oid in state.open_orders or oid in state.closed_orders:
            continue
        fresh = dataclasses.replace(order, status="new", filled_qty=_ZERO, filled_avg_price=None, filled_at=None)
        events.append(recovered("new", fresh, order.submitted_at))
        fill_time = order.filled_at or order.updated_at or snapshot.taken_at
        if order.filled_qty > 0:
            if order.status == "filled":
                events.append(recovered("fill", order, fill_time, qty=order.filled_qty, price=order.filled_avg_price))
            else:
                partial = dataclasses.replace(order, status="partially_filled")
                events.append(
                    recovered("partial_fill", partial, fill_time, qty=order.filled_qty, price=order.filled_avg_price)
                )
        if order.status != "filled":
            events.append(recovered(order.status, order, _end_time(order, snapshot.taken_at)))
    return events


def recover(state: State, snapshot: Snapshot) -> list[TradeUpdate]:
    """Everything the snapshot shows `state` missed, ordered by order submission, then id."""
    events = missed_events(state, snapshot) + unseen_closed_events(state, snapshot)
    events.sort(key=lambda e: (utc(e.order.submitted_at), e.order.id))  # stable: per-order order kept
    return events


def keep_positions(snapshot: Snapshot, state: State) -> Snapshot:
    """`snapshot` with the state's own positions: adopting it changes orders and account only."""
    return dataclasses.replace(snapshot, positions=tuple(p.to_position() for p in state.positions.values()))


def missed_part(state: OrderBook, event: TradeUpdate) -> TradeUpdate | None:
    """The fill `event` jumps over, as a recovered `partial_fill`; None when there is no gap.

    A live fill of 100 that takes the order from 300 to 400 while the state
    knows only 200 proves a fill of 100 was lost: it is printed first (source
    "reconcile"), so the printed quantities of each order add up to its fill.
    """
    order = event.order
    known, known_avg, _, _ = known_fill(state, order.id)
    own = event.qty if event.event in FILL_EVENTS and event.qty is not None else _ZERO
    before = order.filled_qty - own
    gap = before - known
    if gap <= 0:
        return None
    # The average of the order's first `before` shares, unrounded (so the missed part's
    # price is rounded once): its whole fill less this event's own.
    prior = None
    if order.filled_avg_price is not None and (own == 0 or event.price is not None):
        prior = (order.filled_qty * order.filled_avg_price - own * (event.price or _ZERO)) / before
        if prior <= 0:
            prior = None  # averages too rounded to tell
    price = None
    if prior is not None and known == 0:
        price = price_places(prior)  # the whole earlier fill was missed
    elif prior is not None and known_avg is not None:
        price = fill_price_between(known, known_avg, before, prior)
    prior_avg = price_places(prior) if prior is not None else None
    earlier = dataclasses.replace(order, status="partially_filled", filled_qty=before, filled_avg_price=prior_avg)
    return recovered("partial_fill", earlier, event.timestamp, qty=gap, price=price)


def polled_events(
    before: Order | None, after: Order, at: datetime | None = None, fills: Sequence[Activity] | None = None
) -> list[TradeUpdate]:
    """The trade updates that explain how `before` became `after` (two polls of one order).

    The shares filled in between give one `partial_fill`/`fill` per execution at
    its own price and size when the account's FILL activities (`fills`) account
    for them (`exact_fills`), else one event of them all at the price implied by
    the averages; a new status gives one event named after it. `at` (else the
    order's `updated_at`, else its submission) is their time.
    """
    moment = at or after.updated_at or after.submitted_at
    events: list[TradeUpdate] = []
    filled_before = before.filled_qty if before is not None else _ZERO
    delta = after.filled_qty - filled_before
    exact = exact_fills(filled_before, after, fills, moment) if delta > 0 and fills is not None else None
    if exact is not None:
        events += exact
    elif delta > 0:
        name = "fill" if after.status == "filled" else "partial_fill"
        before_avg = before.filled_avg_price if before is not None else None
        price = fill_price_between(filled_before, before_avg, after.filled_qty, after.filled_avg_price)
        events.append(recovered(name, after, moment, qty=delta, price=price))
    if (before is None or before.status != after.status) and after.status not in _STATUS_FILL:
        events.append(recovered(after.status, after, moment))
    return events


def exact_fills(
    filled_before: Decimal, after: Order, fills: Sequence[Activity], moment: datetime
) -> list[TradeUpdate] | None:
    """One event per execution of `after` beyond its first `filled_before` shares, each at its own
    price and size, from the account's FILL activities (oldest first); each event's order is the
    order as that fill left it, so its `id` is the one the stream would have given.

    None when the activities do not add up to exactly what the order says it filled, or do not
    meet `filled_before` at an execution's end (the activity feed can lag the order).
    """
    mine = [
        (fill.qty, fill.price, fill.at or moment)
        for fill in fills
        if fill.order_id == after.id and fill.qty and fill.price is not None
    ]
    if sum(qty for qty, _, _ in mine) != after.filled_qty:
        return None
    events: list[TradeUpdate] = []
    filled = value = _ZERO
    for qty, price, at in mine:
        if filled < filled_before < filled + qty:
            return None
        filled += qty
        value += qty * price
        if filled <= filled_before:
            continue
        if filled == after.filled_qty:
            view = after
        else:
            average = price_places(value / filled)
            view = dataclasses.replace(after, status="partially_filled", filled_qty=filled, filled_avg_price=average)
        name = "fill" if view.status == "filled" else "partial_fill"
        events.append(recovered(name, view, at, qty=qty, price=price))
    return events


def _end_time(order: Order, taken_at: datetime) -> datetime:
    return order.canceled_at or order.expired_at or order.failed_at or order.updated_at or taken_at


def _events_for_known(record: OrderRecord, order: Order, taken_at: datetime) -> list[TradeUpdate]:
    """Recovered events for an order local state has open."""
    missed = order.filled_qty - record.filled_qty
    events: list[TradeUpdate] = []
    fill_time = order.filled_at or order.updated_at or taken_at
    price = fill_price_between(record.filled_qty, record.filled_avg_price, order.filled_qty, order.filled_avg_price)
    if not order.is_final:
        if missed > 0:
            events.append(recovered("partial_fill", order, fill_time, qty=missed, price=price))
        return events
    if order.status == "filled":
        # Always sent for a filled order, even one whose fill local state
        # already counted, because it is what closes the order.
        events.append(
            recovered("fill", order, fill_time, qty=max(missed, _ZERO), price=price or order.filled_avg_price)
        )
        return events
    if missed > 0:
        partial = dataclasses.replace(order, status="partially_filled")
        events.append(recovered("partial_fill", partial, fill_time, qty=missed, price=price))
    events.append(recovered(order.status, order, _end_time(order, taken_at)))
    return events


def _events_for_unknown(order: Order, snapshot: Snapshot) -> list[TradeUpdate]:
    """Recovered events for an open order local state never heard of."""
    if order.filled_qty <= 0:
        return [recovered("new", order, order.submitted_at)]
    fresh = dataclasses.replace(order, status="new", filled_qty=_ZERO, filled_avg_price=None)
    fill_time = order.updated_at or snapshot.taken_at
    return [
        recovered("new", fresh, order.submitted_at),
        recovered("partial_fill", order, fill_time, qty=order.filled_qty, price=order.filled_avg_price),
    ]
