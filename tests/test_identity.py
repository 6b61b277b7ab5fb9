"""`core.identity.event_id` and write-ahead: the properties a reader dropping repeats by `id` relies on.

- Different events of a true history never share an id.
- A fill has the same id live and recovered from a snapshot, and as printed again from the outbox.
- Played through crashes (the in-memory ledger and whatever was not saved are lost, the run restarts
  from the saved state, prints the outbox, reconciles, goes on) with drops, duplicates and
  reconciliations: one id is always the identical line, and the fills, counted once per id, add up to
  each order's broker fill -- nothing lost, nothing counted twice.
"""

from __future__ import annotations

import dataclasses
import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import ACCOUNT_ID, histories, interleave, lifecycles

from alpaca_cli.core import Ledger, State, initial_state, recover
from alpaca_cli.core.identity import event_id
from alpaca_cli.domain import FILL_EVENTS, Account, Order, Position, Snapshot, TradeUpdate
from alpaca_cli.output import records

ACCOUNT = Account(id=ACCOUNT_ID, account_number="PA1234567", status="ACTIVE")
T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


def _truth(events: list[TradeUpdate], taken_at: datetime) -> Snapshot:
    """The broker snapshot after `events` (each order as its latest event shows it)."""
    latest: dict[str, Order] = {}
    for event in events:
        latest[event.order.id] = event.order
    signed: dict[str, Decimal] = defaultdict(Decimal)
    for order in latest.values():
        signed[order.symbol] += -order.filled_qty if order.side == "sell" else order.filled_qty
    held = tuple(
        Position(symbol=s, qty=abs(q), side="long" if q > 0 else "short", avg_entry_price=Decimal(1))
        for s, q in signed.items()
        if q != 0
    )
    return Snapshot(
        account=ACCOUNT,
        positions=held,
        open_orders=tuple(o for o in latest.values() if not o.is_final),
        final_orders=tuple(o for o in latest.values() if o.is_final),
        taken_at=taken_at,
    )


def _line(event: TradeUpdate) -> str:
    return records.trade_update(event)


def test_the_id_rule_by_example() -> None:
    order = Order("o1", "c1", "AAPL", "buy", "market", "day", "partially_filled", T0, qty=Decimal(100))
    fill = TradeUpdate("partial_fill", dataclasses.replace(order, filled_qty=Decimal("70.0")), T0, qty=Decimal(30))
    assert event_id(fill) == "o1:fill:70"
    recovered = dataclasses.replace(fill, event="fill", source="reconcile", timestamp=T0 + timedelta(hours=1))
    assert event_id(recovered) == event_id(fill)  # how or when it was learned does not matter
    assert event_id(TradeUpdate("new", order, T0)) == "o1:new"
    assert event_id(TradeUpdate("canceled", order, T0)) == "o1:canceled"
    assert event_id(TradeUpdate("pending_cancel", order, T0)) == "o1:pending_cancel:2026-03-02T15:00:00Z"
    assert event_id(TradeUpdate("pending_cancel", order, T0 + timedelta(seconds=1))) != event_id(
        TradeUpdate("pending_cancel", order, T0)
    )


@given(data=st.data())
def test_different_events_of_a_history_never_share_an_id(data: st.DataObject) -> None:
    stream = interleave(data.draw, data.draw(histories(max_orders=4)))
    ids = [event_id(e) for e in stream if not (e.event in FILL_EVENTS and e.qty == 0)]
    assert len(ids) == len(set(ids))


@given(data=st.data())
def test_a_fill_recovered_from_a_snapshot_has_the_id_and_line_of_the_live_one(data: st.DataObject) -> None:
    events = data.draw(lifecycles())
    fills = [i for i, e in enumerate(events) if e.event in FILL_EVENTS]
    if not fills:
        return
    cut = data.draw(st.sampled_from(fills))
    live = events[cut]
    start = min(e.timestamp for e in events) - timedelta(days=1)
    ledger = Ledger(initial_state(Snapshot(ACCOUNT, (), (), start)))
    for event in events[:cut]:
        ledger.admit(event)
    recovered = [
        e for e in recover(ledger.state, _truth(events[: cut + 1], live.timestamp)) if e.event in FILL_EVENTS and e.qty
    ]
    assert [event_id(e) for e in recovered] == [event_id(live)]
    assert recovered[0].qty == live.qty  # exactly the one fill, so the same quantity
    again = State.empty(ACCOUNT_ID).with_outbox([live]).to_json()
    assert [_line(e) for e in State.model_validate_json(again).pending()] == [_line(live)]


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_through_crashes_one_id_is_one_line_and_fills_add_up_once_per_id(data: st.DataObject) -> None:
    stream = interleave(data.draw, data.draw(histories(max_orders=4)))
    start = min((e.timestamp for e in stream), default=T0) - timedelta(days=1)
    later = start + timedelta(days=2)
    saved = initial_state(Snapshot(ACCOUNT, (), (), start))  # the file
    printed: list[str] = []  # every line a reader received, repeats included

    def restart(upto: int) -> Ledger:
        """A new run on the saved file: the outbox first, then a reconciliation; nothing saved yet."""
        printed.extend(_line(e) for e in saved.pending())
        ledger = Ledger(saved)
        batch.clear()
        for event in recover(ledger.state, _truth(stream[:upto], later)):
            batch.extend(ledger.admit(event)[0])
        ledger.adopt(_truth(stream[:upto], later))
        return ledger

    def save_and_print(ledger: Ledger, printed_part: int | None = None) -> State:
        """Write-ahead: save the batch (with its effect) before printing it; a crash may cut the printing."""
        file = ledger.state.with_outbox(batch)
        printed.extend(_line(e) for e in batch[:printed_part])
        batch.clear()
        return file

    batch: list[TradeUpdate] = []
    ledger = restart(0)
    for i, event in enumerate(stream):
        fate = data.draw(st.sampled_from(["deliver", "deliver", "drop", "twice"]))
        if fate != "drop":
            for _ in range(2 if fate == "twice" else 1):
                batch.extend(ledger.admit(event)[0])
        step = data.draw(st.sampled_from(["go on", "go on", "save", "crash", "crash mid-print", "reconcile"]))
        if step == "save":
            saved = save_and_print(ledger)
        elif step == "crash":  # the unsaved batch dies with the process
            ledger = restart(i + 1)
        elif step == "crash mid-print":
            saved = save_and_print(ledger, data.draw(st.integers(0, len(batch))))
            ledger = restart(i + 1)
        elif step == "reconcile":
            for found in recover(ledger.state, _truth(stream[: i + 1], later)):
                batch.extend(ledger.admit(found)[0])
    ledger = restart(len(stream))
    saved = save_and_print(ledger)

    by_id: dict[str, str] = {}
    for line in printed:
        assert by_id.setdefault(json.loads(line)["id"], line) == line, f"two lines for one id: {line}"
    filled: dict[str, Decimal] = defaultdict(Decimal)
    for line in by_id.values():
        record = json.loads(line, parse_float=Decimal, parse_int=Decimal)
        if record["event"] in FILL_EVENTS:
            filled[record["order_id"]] += record["qty"]
    truth = _truth(stream, later)
    for order in [*truth.open_orders, *truth.final_orders]:
        assert filled.get(order.id, Decimal(0)) == order.filled_qty, order.id
