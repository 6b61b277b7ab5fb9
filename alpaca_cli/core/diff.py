"""Reconciliation: compare local state with a broker snapshot, and close the gap.

The broker snapshot is truth; local state is what trade-update delivery told
us. Three pure functions work on the pair:

- `diff(local, snapshot)` says how they disagree, as `Difference`s;
- `missed_events(local, snapshot)` recovers the order events local state has
  not seen (fills with only the missed quantity, cancels, expiries, rejects,
  orders it never heard of), to go through the same `apply` as live events;
- `adopt(local, snapshot, now)` makes local equal broker truth outright,
  including what no event explains (a position moved by something other than
  our orders).

Difference kinds (stable strings, grouped in this order in every output):

| kind | meaning |
|---|---|
| `account_changed` | account status or a blocked flag differs |
| `position_missing_locally` | the broker holds a position local state lacks |
| `position_missing_at_broker` | local state holds a position the broker lacks |
| `position_qty_changed` | both hold the symbol, with different signed quantity |
| `order_filled` | open locally, filled at the broker |
| `order_canceled` | open locally, canceled (or replaced, stopped) at the broker |
| `order_rejected` | open locally, rejected at the broker |
| `order_expired` | open locally, expired (or done for day) at the broker |
| `partial_fill_missed` | open on both sides, the broker has filled more |
| `order_unknown_locally` | open at the broker, not open locally |
| `order_missing_at_broker` | open locally, and the snapshot has neither it open nor its final state |

A snapshot of another account is not a difference but an error (`UsageError`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from alpaca_cli.core.state import (
    CLOSED_ORDERS_LIMIT,
    AccountRecord,
    ClosedOrder,
    OrderRecord,
    PositionRecord,
    State,
    utc,
)
from alpaca_cli.domain import Order, Snapshot, TradeUpdate
from alpaca_cli.errors import UsageError

ACCOUNT_CHANGED = "account_changed"
POSITION_MISSING_LOCALLY = "position_missing_locally"
POSITION_MISSING_AT_BROKER = "position_missing_at_broker"
POSITION_QTY_CHANGED = "position_qty_changed"
ORDER_FILLED = "order_filled"
ORDER_CANCELED = "order_canceled"
ORDER_REJECTED = "order_rejected"
ORDER_EXPIRED = "order_expired"
PARTIAL_FILL_MISSED = "partial_fill_missed"
ORDER_UNKNOWN_LOCALLY = "order_unknown_locally"
ORDER_MISSING_AT_BROKER = "order_missing_at_broker"

# Every kind, in output order.
KINDS: tuple[str, ...] = (
    ACCOUNT_CHANGED,
    POSITION_MISSING_LOCALLY,
    POSITION_MISSING_AT_BROKER,
    POSITION_QTY_CHANGED,
    ORDER_FILLED,
    ORDER_CANCELED,
    ORDER_REJECTED,
    ORDER_EXPIRED,
    PARTIAL_FILL_MISSED,
    ORDER_UNKNOWN_LOCALLY,
    ORDER_MISSING_AT_BROKER,
)
POSITION_KINDS = frozenset({POSITION_MISSING_LOCALLY, POSITION_MISSING_AT_BROKER, POSITION_QTY_CHANGED})
ORDER_KINDS = frozenset(KINDS) - POSITION_KINDS - {ACCOUNT_CHANGED}

_KIND_RANK = {kind: rank for rank, kind in enumerate(KINDS)}
# Final order status → the difference it makes for an order open locally.
_FINAL_KIND = {
    "filled": ORDER_FILLED,
    "canceled": ORDER_CANCELED,
    "replaced": ORDER_CANCELED,
    "stopped": ORDER_CANCELED,
    "rejected": ORDER_REJECTED,
    "expired": ORDER_EXPIRED,
    "done_for_day": ORDER_EXPIRED,
}
_ACCOUNT_FIELDS = (
    "status",
    "trading_blocked",
    "account_blocked",
    "transfers_blocked",
    "trade_suspended_by_user",
)
_PRICE_STEP = Decimal("0.000001")


@dataclass(frozen=True, slots=True)
class Difference:
    """One way local state and the broker disagree.

    `local` and `broker` hold the compared values side by side (`None` where a
    side has nothing): plain dicts of str, bool and `Decimal`, which the
    output layer writes as JSON numbers.
    """

    kind: str
    symbol: str | None = None
    order_id: str | None = None
    client_order_id: str | None = None
    local: dict[str, Any] | None = None
    broker: dict[str, Any] | None = None
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The contract's `"type":"difference"` line, before JSON encoding."""
        return {
            "type": "difference",
            "kind": self.kind,
            "symbol": self.symbol,
            "order_id": self.order_id,
            "client_order_id": self.client_order_id,
            "local": self.local,
            "broker": self.broker,
            "detail": self.detail,
        }

    def sort_key(self) -> tuple[int, str, str]:
        return (_KIND_RANK[self.kind], self.symbol or "", self.order_id or "")


def check_account(local: State, snapshot: Snapshot) -> None:
    """Refuse to compare a state with another account's snapshot."""
    if local.account_id != snapshot.account.id:
        raise UsageError(
            f"the state belongs to account {local.account_id}, but the broker reports account {snapshot.account.id}",
            hint="use the state file of this account, or another --state path",
        )


def diff(local: State, snapshot: Snapshot) -> list[Difference]:
    """Every difference between local state and broker truth, in stable order."""
    check_account(local, snapshot)
    found = _account_differences(local, snapshot)
    found += _position_differences(local, snapshot)
    found += _order_differences(local, snapshot)
    found.sort(key=Difference.sort_key)
    return found


def missed_events(local: State, snapshot: Snapshot) -> list[TradeUpdate]:
    """The order events that bring local state to broker truth, `source="reconcile"`.

    Per order, in order: a fill or partial fill carrying only the missed
    quantity (`qty`) and the order's cumulative fill; then the final event
    (canceled, expired, rejected, ...) when the order ended otherwise than
    filled. Orders the broker lists open but local state never heard of get a
    `new` event, then a `partial_fill` for what they already filled. Orders
    are taken by submission time, then id.
    """
    check_account(local, snapshot)
    broker_open, final = _broker_orders(snapshot)
    recovered: list[tuple[datetime, str, list[TradeUpdate]]] = []
    for record in local.open_orders.values():
        order = broker_open.get(record.id) or final.get(record.id)
        if order is None:
            continue
        events = _events_for_known(record, order, snapshot.taken_at)
        if events:
            recovered.append((utc(order.submitted_at), order.id, events))
    for order in broker_open.values():
        if order.id in local.open_orders or order.id in local.closed_orders:
            continue
        recovered.append((utc(order.submitted_at), order.id, _events_for_unknown(order, snapshot)))
    recovered.sort(key=lambda item: (item[0], item[1]))
    return [event for _, _, events in recovered for event in events]


def adopt(local: State, snapshot: Snapshot, now: datetime) -> State:
    """Local state made equal to broker truth, reconciled at `now`.

    Positions, open orders and account facts are taken from the snapshot.
    Orders that left the open set are remembered as closed (with their final
    fill, or local's last known fill and status "missing" when the snapshot
    has no final state for them), so a late event for them stays a no-op.
    The execution-id memory and `last_event` carry over.
    """
    check_account(local, snapshot)
    broker_open, final = _broker_orders(snapshot)
    closed = {oid: rec for oid, rec in local.closed_orders.items() if oid not in broker_open}
    for record in local.open_orders.values():
        if record.id not in broker_open and record.id not in final:
            closed[record.id] = ClosedOrder.model_construct(filled_qty=record.filled_qty, status="missing")
    for order in final.values():
        closed[order.id] = ClosedOrder.model_construct(filled_qty=order.filled_qty, status=order.status)
    while len(closed) > CLOSED_ORDERS_LIMIT:
        del closed[next(iter(closed))]
    return local.model_copy(
        update={
            "account": AccountRecord.from_account(snapshot.account),
            "positions": {p.symbol: PositionRecord.from_position(p) for p in snapshot.positions if p.qty != 0},
            "open_orders": {oid: OrderRecord.from_order(o) for oid, o in broker_open.items()},
            "closed_orders": closed,
            "last_reconciled_at": utc(now),
        }
    )


def _broker_orders(snapshot: Snapshot) -> tuple[dict[str, Order], dict[str, Order]]:
    """(open, final) orders by id. A "final" order fetched by id that is in
    fact still open (a race with the open-orders listing) counts as open."""
    broker_open = {o.id: o for o in snapshot.open_orders}
    final: dict[str, Order] = {}
    for order in snapshot.final_orders:
        if order.id in broker_open:
            continue
        if order.is_final:
            final[order.id] = order
        else:
            broker_open[order.id] = order
    return broker_open, final


def _account_differences(local: State, snapshot: Snapshot) -> list[Difference]:
    broker = AccountRecord.from_account(snapshot.account)
    broker_values = {name: getattr(broker, name) for name in _ACCOUNT_FIELDS}
    if local.account is None:
        return [
            Difference(
                kind=ACCOUNT_CHANGED,
                local=None,
                broker=broker_values,
                detail="no account facts recorded locally",
            )
        ]
    local_values = {name: getattr(local.account, name) for name in _ACCOUNT_FIELDS}
    changed = [name for name in _ACCOUNT_FIELDS if local_values[name] != broker_values[name]]
    if not changed:
        return []
    return [
        Difference(
            kind=ACCOUNT_CHANGED,
            local={name: local_values[name] for name in changed},
            broker={name: broker_values[name] for name in changed},
            detail=", ".join(f"{name} {_text(local_values[name])} -> {_text(broker_values[name])}" for name in changed),
        )
    ]


def _position_differences(local: State, snapshot: Snapshot) -> list[Difference]:
    broker = {p.symbol: PositionRecord.from_position(p) for p in snapshot.positions if p.qty != 0}
    found: list[Difference] = []
    for symbol, mine in local.positions.items():
        theirs = broker.get(symbol)
        if theirs is None:
            found.append(
                Difference(
                    kind=POSITION_MISSING_AT_BROKER,
                    symbol=symbol,
                    local=_position_values(mine),
                    detail=f"local {_signed(mine)}, broker holds none",
                )
            )
        elif mine.signed_qty != theirs.signed_qty:
            found.append(
                Difference(
                    kind=POSITION_QTY_CHANGED,
                    symbol=symbol,
                    local=_position_values(mine),
                    broker=_position_values(theirs),
                    detail=f"local {_signed(mine)}, broker {_signed(theirs)}",
                )
            )
    for symbol, theirs in broker.items():
        if symbol not in local.positions:
            found.append(
                Difference(
                    kind=POSITION_MISSING_LOCALLY,
                    symbol=symbol,
                    broker=_position_values(theirs),
                    detail=f"broker {_signed(theirs)}, none locally",
                )
            )
    return found


def _order_differences(local: State, snapshot: Snapshot) -> list[Difference]:
    broker_open, final = _broker_orders(snapshot)
    found: list[Difference] = []
    for record in local.open_orders.values():
        if record.id in broker_open:
            order = broker_open[record.id]
            if order.filled_qty > record.filled_qty:
                found.append(
                    _order_difference(
                        PARTIAL_FILL_MISSED,
                        record,
                        order,
                        f"broker filled {_text(order.filled_qty)}, local {_text(record.filled_qty)}",
                    )
                )
        elif record.id in final:
            order = final[record.id]
            found.append(
                _order_difference(
                    _FINAL_KIND.get(order.status, ORDER_CANCELED),
                    record,
                    order,
                    f"{order.status} at the broker after filling {_text(order.filled_qty)}"
                    f" (local {record.status}, {_text(record.filled_qty)} filled)",
                )
            )
        else:
            found.append(
                _order_difference(
                    ORDER_MISSING_AT_BROKER,
                    record,
                    None,
                    "neither open at the broker nor in the snapshot's final orders",
                )
            )
    for order in broker_open.values():
        if order.id not in local.open_orders:
            closed = local.closed_orders.get(order.id)
            detail = (
                f"open at the broker, closed locally as {closed.status}"
                if closed is not None
                else "open at the broker, unknown locally"
            )
            found.append(_order_difference(ORDER_UNKNOWN_LOCALLY, None, order, detail))
    return found


def _order_difference(kind: str, record: OrderRecord | None, order: Order | None, detail: str) -> Difference:
    some = record if record is not None else order
    assert some is not None
    return Difference(
        kind=kind,
        symbol=some.symbol,
        order_id=some.id,
        client_order_id=some.client_order_id,
        local=_order_values(record) if record is not None else None,
        broker=_order_values(order) if order is not None else None,
        detail=detail,
    )


def _order_values(order: OrderRecord | Order) -> dict[str, Any]:
    return {
        "status": order.status,
        "side": order.side,
        "qty": order.qty,
        "notional": order.notional,
        "filled_qty": order.filled_qty,
        "filled_avg_price": order.filled_avg_price,
    }


def _position_values(position: PositionRecord) -> dict[str, Any]:
    return {
        "qty": position.qty,
        "side": position.side,
        "avg_entry_price": position.avg_entry_price,
    }


def _signed(position: PositionRecord) -> str:
    return f"{position.side} {_text(position.qty)}"


def _text(value: object) -> str:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _events_for_known(record: OrderRecord, order: Order, taken_at: datetime) -> list[TradeUpdate]:
    """Recovered events for an order local state has open."""
    missed = order.filled_qty - record.filled_qty
    events: list[TradeUpdate] = []
    fill_time = order.filled_at or order.updated_at or taken_at
    if not order.is_final:
        if missed > 0:
            price = _missed_price(record, order, missed)
            events.append(_fill("partial_fill", order, missed, price, fill_time))
        return events
    if order.status == "filled":
        # Always sent for a filled order, even one whose fill local state
        # already counted, because it is what closes the order.
        price = _missed_price(record, order, missed) if missed > 0 else order.filled_avg_price
        events.append(_fill("fill", order, max(missed, Decimal(0)), price, fill_time))
        return events
    if missed > 0:
        price = _missed_price(record, order, missed)
        partial = dataclasses.replace(order, status="partially_filled")
        events.append(_fill("partial_fill", partial, missed, price, fill_time))
    end_time = order.canceled_at or order.expired_at or order.failed_at or order.updated_at or taken_at
    events.append(TradeUpdate(event=order.status, order=order, timestamp=end_time, source="reconcile"))
    return events


def _events_for_unknown(order: Order, snapshot: Snapshot) -> list[TradeUpdate]:
    """Recovered events for an open order local state never heard of."""
    if order.filled_qty <= 0:
        return [TradeUpdate(event="new", order=order, timestamp=order.submitted_at, source="reconcile")]
    fresh = dataclasses.replace(order, status="new", filled_qty=Decimal(0), filled_avg_price=None)
    return [
        TradeUpdate(event="new", order=fresh, timestamp=order.submitted_at, source="reconcile"),
        _fill(
            "partial_fill",
            order,
            order.filled_qty,
            order.filled_avg_price,
            order.updated_at or snapshot.taken_at,
        ),
    ]


def _fill(name: str, order: Order, qty: Decimal, price: Decimal | None, timestamp: datetime) -> TradeUpdate:
    return TradeUpdate(event=name, order=order, timestamp=timestamp, price=price, qty=qty, source="reconcile")


def _missed_price(record: OrderRecord, order: Order, missed: Decimal) -> Decimal | None:
    """The average price of the missed shares alone, from the two cumulative
    averages when both are known; else the broker's cumulative average."""
    if order.filled_avg_price is None:
        return None
    if record.filled_qty <= 0 or record.filled_avg_price is None:
        return order.filled_avg_price
    total = order.filled_qty * order.filled_avg_price
    already = record.filled_qty * record.filled_avg_price
    price = (total - already) / missed
    if price <= 0:
        return order.filled_avg_price
    return price.quantize(_PRICE_STEP) if price.as_tuple().exponent < -6 else price
