"""`apply`: the one state transition for every trade update, live or recovered.

Live stream events, events recovered by reconciliation and REST polling all
go through here, so the rules live in one place:

- Fills are measured by the order's *cumulative* `filled_qty`: the position
  moves by how much it grew since the state last saw the order. A replayed
  fill, a stale partial fill arriving after the final fill, or a fill seen
  both live and in a snapshot therefore moves nothing. Execution ids, where
  present, are remembered as a second key.
- An order that closed is remembered (bounded, see `CLOSED_ORDERS_LIMIT`) with
  its final cumulative fill, so late or replayed events for it stay no-ops
  and never reopen it.
- `last_event` is the most recent event *by its timestamp*, not the last one
  applied, so that replays and interleavings cannot move it backwards.

Together these make `apply` idempotent (`apply(apply(s, e), e) == apply(s, e)`,
and applying a sequence twice equals applying it once), and make the final
positions independent of the order in which events of different orders arrive.
Average entry prices are average-cost bookkeeping and do depend on the order
of fills; `diff` never compares them.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import cast

from alpaca_cli.core.state import (
    CLOSED_ORDERS_LIMIT,
    EXECUTION_IDS_LIMIT,
    ClosedOrder,
    LastEvent,
    OrderRecord,
    PositionRecord,
    State,
    sort_key,
)
from alpaca_cli.domain import FINAL_STATUSES, TradeUpdate

# Events after which the order stays (or becomes) open.
OPEN_EVENTS = frozenset(
    {
        "new",
        "accepted",
        "pending_new",
        "partial_fill",
        "pending_cancel",
        "pending_replace",
        "calculated",
        "suspended",
        "restated",
        "order_cancel_rejected",
        "order_replace_rejected",
    }
)
# Events that end an order, with the status it ends in.
CLOSE_EVENTS: dict[str, str] = {
    "fill": "filled",
    "canceled": "canceled",
    "expired": "expired",
    "rejected": "rejected",
    "done_for_day": "done_for_day",
    "replaced": "replaced",
    "stopped": "stopped",
}
KNOWN_EVENTS = OPEN_EVENTS | CLOSE_EVENTS.keys()

_ZERO = Decimal(0)


def apply(state: State, event: TradeUpdate) -> State:
    """The state after `event`; `state` itself when the event changes nothing."""
    return apply_all(state, (event,))


def apply_all(state: State, events: Iterable[TradeUpdate]) -> State:
    """`apply` each event in turn, copying the state only once."""
    work = Transition(state)
    for event in events:
        work.apply(event)
    return work.result()


class Transition:
    """Working copies of one state's collections, for a run of events.

    `apply` the events one at a time, read `open_orders` and `closed_orders`
    between them, take `result()` when a `State` is wanted. Copy-on-write: the
    collections stay the state's own until the first change copies them, and
    `result()` hands them over to the new state, so the change after it copies
    again. A catch-up of 10,000 recovered events therefore copies the state
    once, not once per event (quadratic), and a `Ledger` that keeps one
    transition going copies nothing per live event, only after its state is read.

    `state` is the state started from, then the last `result()`.
    """

    def __init__(self, state: State) -> None:
        self.state = state
        self.positions = state.positions
        self.open_orders = state.open_orders
        self.closed_orders = state.closed_orders
        self.execution_ids: list[str] | tuple[str, ...] = state.execution_ids
        self.seen_executions = set(state.execution_ids)  # its own index, never handed over
        self._latest: TradeUpdate | None = None  # the last event, when newer than the state's
        self._latest_key = state.last_event.sort_key() if state.last_event is not None else None
        self.changed = False
        self._owned = False  # the collections above are copies of this transition's own

    def result(self) -> State:
        if not self.changed:
            return self.state
        self.state = self.state.model_copy(
            update={
                "positions": self.positions,
                "open_orders": self.open_orders,
                "closed_orders": self.closed_orders,
                "execution_ids": tuple(self.execution_ids),
                "last_event": self.state.last_event if self._latest is None else LastEvent.from_update(self._latest),
            }
        )
        self.execution_ids = self.state.execution_ids
        self._latest = None
        self.changed = False
        self._owned = False  # the new state holds them now: a value, never changed again
        return self.state

    def _own(self) -> None:
        """About to change a collection: copy them all if they are shared, and note the change."""
        if not self._owned:
            self.positions = dict(self.positions)
            self.open_orders = dict(self.open_orders)
            self.closed_orders = dict(self.closed_orders)
            self.execution_ids = list(self.execution_ids)
            self._owned = True
        self.changed = True

    def apply(self, event: TradeUpdate) -> None:
        order = event.order
        self._note_last_event(event)
        if event.event not in KNOWN_EVENTS:
            return  # forward compatible: a new event name is seen, not acted on
        if event.execution_id is not None:
            if event.execution_id in self.seen_executions:
                return
            self._remember_execution(event.execution_id)

        open_record = self.open_orders.get(order.id)
        closed_record = self.closed_orders.get(order.id)
        if open_record is not None:
            known = open_record.filled_qty
        elif closed_record is not None:
            known = closed_record.filled_qty
        else:
            known = _ZERO
        filled = order.filled_qty
        if filled > known:
            self._move_position(event, filled - known)

        if closed_record is not None:
            # Closed is final: late events only top up the remembered fill.
            if filled > known:
                self._own()
                self.closed_orders[order.id] = ClosedOrder.model_construct(
                    filled_qty=filled, status=closed_record.status
                )
            return

        if event.event in CLOSE_EVENTS or order.status in FINAL_STATUSES:
            status = order.status if order.status in FINAL_STATUSES else CLOSE_EVENTS[event.event]
            self._own()
            self.open_orders.pop(order.id, None)
            self.closed_orders[order.id] = ClosedOrder.model_construct(filled_qty=max(filled, known), status=status)
            while len(self.closed_orders) > CLOSED_ORDERS_LIMIT:
                del self.closed_orders[next(iter(self.closed_orders))]
            return

        if filled < known:
            return  # a stale event (older than what the state already reflects)
        record = OrderRecord.from_order(order)
        if record != open_record:
            self._own()
            self.open_orders[order.id] = record

    def _note_last_event(self, event: TradeUpdate) -> None:
        key = sort_key(event)
        if self._latest_key is None or key > self._latest_key:
            self._latest, self._latest_key = event, key
            self.changed = True

    def _remember_execution(self, execution_id: str) -> None:
        self._own()
        kept = cast(list[str], self.execution_ids)  # owned: a list
        kept.append(execution_id)
        self.seen_executions.add(execution_id)
        if len(kept) > EXECUTION_IDS_LIMIT:
            dropped = kept[: len(kept) - EXECUTION_IDS_LIMIT]
            del kept[: len(dropped)]
            self.seen_executions.difference_update(dropped)

    def _move_position(self, event: TradeUpdate, filled: Decimal) -> None:
        """Move the order's position by `filled` more shares (buy +, sell −)."""
        order = event.order
        price = _fill_price(event, filled)
        delta = -filled if order.side == "sell" else filled
        current = self.positions.get(order.symbol)
        before = current.signed_qty if current is not None else _ZERO
        after = before + delta
        self._own()
        if after == 0:
            self.positions.pop(order.symbol, None)
            return
        if current is None:
            avg = price if price is not None else _ZERO
        elif (before > 0) == (delta > 0):  # growing: weight in the new shares
            avg = (
                (current.qty * current.avg_entry_price + filled * price) / abs(after)
                if price is not None
                else current.avg_entry_price
            )
        elif (after > 0) == (before > 0):  # shrinking: the entry price stands
            avg = current.avg_entry_price
        else:  # flipped through zero: the new side was entered at this fill
            avg = price if price is not None else current.avg_entry_price
        self.positions[order.symbol] = PositionRecord.model_construct(
            symbol=order.symbol,
            qty=abs(after),
            side="long" if after > 0 else "short",
            avg_entry_price=avg,
        )


def _fill_price(event: TradeUpdate, filled: Decimal) -> Decimal | None:
    """The price of `filled` new shares: the event's own price when the event
    is exactly that fill, else the order's average fill price."""
    if event.price is not None and (event.qty is None or event.qty == filled):
        return event.price
    if event.order.filled_avg_price is not None:
        return event.order.filled_avg_price
    return event.price
