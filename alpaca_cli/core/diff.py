"""Reconciliation: compare local state with a broker snapshot, and close the gap.

The broker snapshot is truth; local state is what trade-update delivery told
us. Two pure functions work on the pair (the events local state missed are
`core.recover`'s):

- `diff(local, snapshot)` says how they disagree, as `Difference`s;
- `adopt(local, snapshot, now)` makes local equal broker truth outright,
  including what no event explains (a position moved by something other than
  our orders); `initial_state(snapshot)` is a new state adopted from one.

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

A snapshot of another account is not a difference but an error (`core.errors.OtherAccount`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from alpaca_cli.core.errors import check_account
from alpaca_cli.core.state import (
    CLOSED_ORDERS_LIMIT,
    AccountRecord,
    ClosedOrder,
    OrderRecord,
    PositionRecord,
    State,
)
from alpaca_cli.domain import Order, Snapshot
from alpaca_cli.text import decimal_text, utc

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


@dataclass(frozen=True, slots=True)
class Difference:
    """One way local state and the broker disagree.

    `local` and `broker` hold the compared values side by side (`None` where a
    side has nothing): plain dicts of str, bool and `Decimal`, which the
    output layer writes as JSON numbers (`output.records.difference`).
    """

    kind: str
    symbol: str | None = None
    order_id: str | None = None
    client_order_id: str | None = None
    local: dict[str, Any] | None = None
    broker: dict[str, Any] | None = None
    detail: str = ""

    def sort_key(self) -> tuple[int, str, str]:
        return (_KIND_RANK[self.kind], self.symbol or "", self.order_id or "")


def diff(local: State, snapshot: Snapshot) -> list[Difference]:
    """Every difference between local state and broker truth, in stable order."""
    check_account(local.account_id, snapshot.account.id)
    found = _account_differences(local, snapshot)
    found += _position_differences(local, snapshot)
    found += _order_differences(local, snapshot)
    found.sort(key=Difference.sort_key)
    return found


def initial_state(snapshot: Snapshot) -> State:
    """A fresh state equal to broker truth, reconciled at `snapshot.taken_at`."""
    return adopt(State.empty(snapshot.account.id), snapshot, snapshot.taken_at)


def adopt(local: State, snapshot: Snapshot, now: datetime) -> State:
    """Local state made equal to broker truth, reconciled at `now`.

    Positions, open orders and account facts are taken from the snapshot.
    Orders that left the open set are remembered as closed (with their final
    fill, or local's last known fill and status "missing" when the snapshot
    has no final state for them), so a late event for them stays a no-op.
    The execution-id memory and `last_event` carry over.
    """
    check_account(local.account_id, snapshot.account.id)
    broker_open, final = broker_orders(snapshot)
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


def broker_orders(snapshot: Snapshot) -> tuple[dict[str, Order], dict[str, Order]]:
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
    broker_open, final = broker_orders(snapshot)
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
        return decimal_text(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
