"""The supervisor's pure parts: backoff, the exactly-once key, gap recovery, and their properties.

The central property (`test_every_fill_printed_exactly_once_whatever_the_delivery`)
plays a true event history through a delivery that drops, duplicates and
delays events and reconciles at random points against the truth so far, and
checks what an operator relies on: each order's printed fill quantities add
up to its broker fill, no (order, cumulative fill) is printed twice, and the
state's positions match the broker without any adoption.
"""

from __future__ import annotations

import dataclasses
import random
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import ACCOUNT_ID, accounts, histories, interleave

from alpaca_cli.core import (
    Ledger,
    State,
    diff,
    initial_state,
    is_new,
    keep_positions,
    missed_part,
    recover,
    unseen_closed_events,
)
from alpaca_cli.domain import FILL_EVENTS, Account, Order, Position, Snapshot, TradeUpdate
from alpaca_cli.errors import AuthError, CliError, ConnectionLimitError, UnreachableError, UsageError
from alpaca_cli.output import records
from alpaca_cli.supervisor import Backoff, Notice, backoff_delay, permanent

T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
ACCOUNT = Account(id=ACCOUNT_ID, account_number="PA1234567", status="ACTIVE")


# ------------------------------------------------------------------------------- backoff


@given(st.integers(0, 100), st.floats(0, 1), st.floats(0.01, 5), st.floats(5, 120))
def test_backoff_delay_stays_within_half_and_whole_of_a_capped_doubling_ceiling(
    failures: int, jitter: float, base: float, cap: float
) -> None:
    delay = backoff_delay(failures, jitter, base=base, cap=cap)
    ceiling = min(cap, base * 2**failures)
    assert ceiling / 2 - 1e-9 <= delay <= ceiling + 1e-9
    assert delay <= cap


def test_backoff_grows_to_the_cap_and_starts_over_only_after_a_healthy_connection() -> None:
    backoff = Backoff(rng=random.Random(1))
    delays = [backoff.next_delay() for _ in range(8)]
    assert 0.5 <= delays[0] <= 1.0
    assert all(15 <= d <= 30 for d in delays[5:])
    backoff.connection_ended(lasted=2.0)  # died young: keep backing off
    assert backoff.next_delay() >= 15
    backoff.connection_ended(lasted=Backoff().healthy_after)
    assert backoff.next_delay() <= 1.0


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (AuthError("refused"), True),
        (ConnectionLimitError("limit"), True),  # the bridge already gave our own dropped socket its grace
        (UnreachableError("down"), False),
        (UsageError("bad"), True),
    ],
)
def test_permanent_errors(error: CliError, expected: bool) -> None:
    assert permanent(error) is expected


# ------------------------------------------------------------------------ helpers (truth)


def _order(oid: str = "o1", **fields: object) -> Order:
    values: dict[str, object] = {
        "id": oid,
        "client_order_id": f"c-{oid}",
        "symbol": "AAPL",
        "side": "buy",
        "type": "market",
        "time_in_force": "day",
        "status": "new",
        "submitted_at": T0,
        "qty": Decimal(300),
    }
    values.update(fields)
    return Order(**values)  # type: ignore[arg-type]


def _fill(order: Order, cumulative: int, qty: int, price: str = "10", *, final: bool = False) -> TradeUpdate:
    now = dataclasses.replace(
        order,
        status="filled" if final else "partially_filled",
        filled_qty=Decimal(cumulative),
        filled_avg_price=Decimal(price),
    )
    return TradeUpdate(
        "fill" if final else "partial_fill",
        now,
        T0 + timedelta(seconds=cumulative),
        price=Decimal(price),
        qty=Decimal(qty),
    )


def _empty_state() -> State:
    return initial_state(Snapshot(account=ACCOUNT, positions=(), open_orders=(), taken_at=T0))


def _truth(events: list[TradeUpdate], taken_at: datetime) -> Snapshot:
    """The broker snapshot after `events` (each order as its latest event shows it)."""
    latest: dict[str, Order] = {}
    for event in events:
        latest[event.order.id] = event.order
    signed: dict[str, Decimal] = defaultdict(Decimal)
    for order in latest.values():
        signed[order.symbol] += -order.filled_qty if order.side == "sell" else order.filled_qty
    positions = tuple(
        Position(symbol=s, qty=abs(q), side="long" if q > 0 else "short", avg_entry_price=Decimal(1))
        for s, q in signed.items()
        if q != 0
    )
    return Snapshot(
        account=ACCOUNT,
        positions=positions,
        open_orders=tuple(o for o in latest.values() if not o.is_final),
        final_orders=tuple(o for o in latest.values() if o.is_final),
        taken_at=taken_at,
    )


# --------------------------------------------------------------------------- exactly once


def test_is_new_by_cumulative_fill_closed_memory_and_status_key() -> None:
    state = _empty_state()
    order = _order()
    new = TradeUpdate("new", order, T0)
    assert is_new(state, new)
    ledger = Ledger(state)
    assert ledger.admit(new)[0] == [new]
    assert ledger.admit(new)[0] == []  # replayed
    first = _fill(order, 100, 100)
    assert ledger.admit(first)[0] == [first]
    assert ledger.admit(first)[0] == []  # same cumulative again (a reconnect replay)
    reject = TradeUpdate("order_cancel_rejected", first.order, T0 + timedelta(seconds=200))
    assert ledger.admit(reject)[0] == [reject]
    assert ledger.admit(reject)[0] == []
    done = _fill(order, 300, 200, final=True)
    assert ledger.admit(done)[0] == [done]
    late = TradeUpdate("canceled", dataclasses.replace(done.order, status="canceled"), T0 + timedelta(hours=1))
    assert ledger.admit(late)[0] == []  # closed is final
    assert ledger.state.positions["AAPL"].qty == 300


def test_a_seen_execution_id_is_never_new() -> None:
    order = _order()
    event = dataclasses.replace(_fill(order, 100, 100), execution_id="x1")
    assert not is_new(_empty_state(), event, {"x1"})


def test_a_fill_that_jumps_over_a_lost_one_brings_the_missing_part_first() -> None:
    order = _order()
    ledger = Ledger(_empty_state())
    ledger.admit(_fill(order, 100, 100, "10"))
    # The fill 100 -> 200 at 12 was lost; then 200 -> 300 at 14 arrives (average 12).
    jump = _fill(order, 300, 100, "14", final=True)
    jump = dataclasses.replace(jump, order=dataclasses.replace(jump.order, filled_avg_price=Decimal(12)))
    gap = missed_part(ledger.state, jump)
    assert gap is not None
    assert (gap.event, gap.qty, gap.price, gap.order.filled_qty, gap.source) == (
        "partial_fill",
        Decimal(100),
        Decimal(12),
        Decimal(200),
        "reconcile",
    )
    printed, _ = ledger.admit(jump)
    assert [(e.event, e.qty, e.source) for e in printed] == [
        ("partial_fill", Decimal(100), "reconcile"),
        ("fill", Decimal(100), "stream"),
    ]
    assert ledger.state.positions["AAPL"].qty == 300


def test_a_cancel_after_a_lost_partial_fill_recovers_the_fill() -> None:
    order = _order()
    ledger = Ledger(_empty_state())
    ledger.admit(TradeUpdate("new", order, T0))
    canceled = dataclasses.replace(order, status="canceled", filled_qty=Decimal(50), filled_avg_price=Decimal(9))
    printed, _ = ledger.admit(TradeUpdate("canceled", canceled, T0 + timedelta(seconds=5)))
    assert [(e.event, e.qty) for e in printed] == [("partial_fill", Decimal(50)), ("canceled", None)]


def test_orders_that_opened_and_closed_unseen_are_recovered() -> None:
    filled = _order("a", status="filled", filled_qty=Decimal(300), filled_avg_price=Decimal(5), filled_at=T0)
    canceled = _order(
        "b", status="canceled", filled_qty=Decimal(40), filled_avg_price=Decimal(6), canceled_at=T0, symbol="MSFT"
    )
    rejected = _order("c", status="rejected", failed_at=T0)
    snapshot = Snapshot(ACCOUNT, (), (), T0, final_orders=(filled, canceled, rejected))
    events = unseen_closed_events(_empty_state(), snapshot)
    assert [(e.order.id, e.event, e.qty) for e in events] == [
        ("a", "new", None),
        ("a", "fill", Decimal(300)),
        ("b", "new", None),
        ("b", "partial_fill", Decimal(40)),
        ("b", "canceled", None),
        ("c", "new", None),
        ("c", "rejected", None),
    ]
    assert all(e.source == "reconcile" for e in events)
    # Once known (here: remembered closed by adoption), they are not recovered again.
    state = _empty_state()
    ledger = Ledger(state)
    for event in events:
        ledger.admit(event)
    assert unseen_closed_events(ledger.state, snapshot) == []
    assert recover(ledger.state, snapshot) == []


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_every_fill_printed_exactly_once_whatever_the_delivery(data: st.DataObject) -> None:
    account = data.draw(accounts())
    assert account.id == ACCOUNT_ID
    stream = interleave(data.draw, data.draw(histories(max_orders=4)))
    start = min((e.timestamp for e in stream), default=T0) - timedelta(days=1)
    ledger = Ledger(initial_state(Snapshot(ACCOUNT, (), (), start)))
    printed: list[TradeUpdate] = []
    late: list[TradeUpdate] = []

    def admit(event: TradeUpdate) -> None:
        printed.extend(ledger.admit(event)[0])

    def reconcile(upto: int) -> None:
        snapshot = _truth(stream[:upto], start + timedelta(days=2))
        for event in recover(ledger.state, snapshot):
            admit(event)
        ledger.adopt(snapshot)
        for event in late:  # live updates queued during the reconciliation
            admit(event)
        late.clear()

    for i, event in enumerate(stream):
        fate = data.draw(st.sampled_from(["deliver", "deliver", "drop", "twice", "late"]))
        if fate == "late":
            late.append(event)
        elif fate != "drop":
            admit(event)
            if fate == "twice":
                admit(event)
        if data.draw(st.booleans()):
            reconcile(i + 1)
    truth = _truth(stream, start + timedelta(days=2))
    for event in recover(ledger.state, truth):
        admit(event)
    for event in late:
        admit(event)

    fills = [e for e in printed if e.event in FILL_EVENTS]
    assert all(e.qty is not None and e.qty > 0 for e in fills)
    assert not [k for k, n in Counter((e.order.id, e.order.filled_qty) for e in fills).items() if n > 1]
    printed_qty: dict[str, Decimal] = defaultdict(Decimal)
    for event in fills:
        printed_qty[event.order.id] += event.qty or 0
    for order in [*truth.open_orders, *truth.final_orders]:
        assert printed_qty.get(order.id, Decimal(0)) == order.filled_qty, order.id
    # Events alone explain the broker: nothing to adopt.
    assert [d for d in diff(ledger.state, truth) if d.kind != "account_changed"] == []


def test_notice_lines_and_records() -> None:
    notice = Notice("disconnected", T0, reconnects=2, reason="connection lost")
    assert notice.text() == "trade-updates stream disconnected: connection lost; polling the broker until it is back"
    assert records.stream(notice) == {
        "type": "stream",
        "stream": "trade-updates",
        "event": "disconnected",
        "at": T0,
        "reconnects": 2,
        "reason": "connection lost",
    }
    failed = records.stream(Notice("failed", T0, error=AuthError("refused", hint="check keys")))
    assert failed["exit_code"] == 3 and "refused" in failed["error"]
    assert "reconnect 1" in Notice("connected", T0, reconnects=1, recovered=3).text()


def test_keep_positions_adopts_orders_and_account_but_not_torn_positions() -> None:
    state = _empty_state()
    ledger = Ledger(state)
    ledger.admit(_fill(_order(), 100, 100))
    still_open = dataclasses.replace(_order(), status="partially_filled", filled_qty=Decimal(100))
    torn = Snapshot(
        account=dataclasses.replace(ACCOUNT, trading_blocked=True),
        positions=(Position(symbol="AAPL", qty=Decimal(200), side="long", avg_entry_price=Decimal(10)),),
        open_orders=(still_open,),
        taken_at=T0 + timedelta(minutes=1),
    )
    kept = keep_positions(torn, ledger.state)
    ledger.adopt(kept)
    assert ledger.state.positions["AAPL"].qty == 100  # the events' figure, not the torn one
    assert ledger.state.account is not None and ledger.state.account.trading_blocked
    assert [d.kind for d in diff(ledger.state, torn)] == ["position_qty_changed"]


def test_opening_events_are_news_while_they_move_the_order_forward() -> None:
    ledger = Ledger(_empty_state())
    order = _order()
    steps = [
        TradeUpdate("pending_new", dataclasses.replace(order, status="pending_new"), T0),
        TradeUpdate("accepted", dataclasses.replace(order, status="accepted"), T0 + timedelta(seconds=1)),
        TradeUpdate("new", order, T0 + timedelta(seconds=2)),
    ]
    assert [len(ledger.admit(step)[0]) for step in steps] == [1, 1, 1]
    assert [len(ledger.admit(step)[0]) for step in steps] == [0, 0, 0]  # replays, in any order
