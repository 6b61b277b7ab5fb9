"""`diff`, `missed_events` and `adopt`: each kind of difference, and the
reconciliation properties (a state agrees with itself; recovered events close
every order difference; adopting makes local equal to broker truth)."""

from __future__ import annotations

import dataclasses
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from strategies import ACCOUNT_ID, drift_cases, snapshots, states

from alpaca_cli.core import (
    KINDS,
    ORDER_KINDS,
    POSITION_KINDS,
    Difference,
    State,
    adopt,
    apply,
    apply_all,
    diff,
    missed_events,
)
from alpaca_cli.domain import Account, Order, Position, Snapshot
from alpaca_cli.errors import UsageError

T0 = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)
LATER = T0 + timedelta(minutes=5)
D = Decimal
ACCOUNT = Account(id=ACCOUNT_ID, account_number="PA1", status="ACTIVE")


def order(oid: str = "o-1", **fields: object) -> Order:
    base = {
        "id": oid,
        "client_order_id": f"c-{oid}",
        "symbol": "AAPL",
        "side": "buy",
        "type": "limit",
        "time_in_force": "day",
        "status": "new",
        "submitted_at": T0,
        "qty": D(100),
        "limit_price": D(190),
    }
    base.update(fields)
    return Order(**base)  # type: ignore[arg-type]


def snapshot(
    positions: tuple[Position, ...] = (),
    open_orders: tuple[Order, ...] = (),
    final_orders: tuple[Order, ...] = (),
    account: Account = ACCOUNT,
    taken_at: datetime = T0,
) -> Snapshot:
    return Snapshot(
        account=account,
        positions=positions,
        open_orders=open_orders,
        taken_at=taken_at,
        final_orders=final_orders,
    )


def long(symbol: str, qty: str, price: str = "100") -> Position:
    return Position(symbol=symbol, qty=D(qty), side="long", avg_entry_price=D(price))


def kinds(found: list[Difference]) -> list[str]:
    return [d.kind for d in found]


# --- one test per kind -------------------------------------------------------


def test_in_sync_is_empty() -> None:
    truth = snapshot((long("AAPL", "10"),), (order(),))
    assert diff(State.from_snapshot(truth), truth) == []


def test_quantities_compare_as_decimals() -> None:
    local = State.from_snapshot(snapshot((long("AAPL", "1.50"),)))
    assert diff(local, snapshot((long("AAPL", "1.5"),))) == []


def test_account_changed() -> None:
    local = State.from_snapshot(snapshot())
    blocked = dataclasses.replace(ACCOUNT, status="ACCOUNT_UPDATED", trading_blocked=True)
    [found] = diff(local, snapshot(account=blocked))
    assert found.kind == "account_changed"
    assert found.local == {"status": "ACTIVE", "trading_blocked": False}
    assert found.broker == {"status": "ACCOUNT_UPDATED", "trading_blocked": True}
    assert "trading_blocked false -> true" in found.detail


def test_other_account_is_an_error_not_a_difference() -> None:
    local = State.from_snapshot(snapshot())
    other = dataclasses.replace(ACCOUNT, id="someone-else")
    for reconcile in (diff, missed_events):
        with pytest.raises(UsageError, match="someone-else"):
            reconcile(local, snapshot(account=other))
    with pytest.raises(UsageError):
        adopt(local, snapshot(account=other), LATER)


def test_position_kinds() -> None:
    local = State.from_snapshot(snapshot((long("AAPL", "10"), long("MSFT", "5"))))
    short_aapl = Position(symbol="AAPL", qty=D(10), side="short", avg_entry_price=D(100))
    found = diff(local, snapshot((short_aapl, long("SPY", "0.25"))))
    assert kinds(found) == [
        "position_missing_locally",
        "position_missing_at_broker",
        "position_qty_changed",
    ]
    missing_locally, missing_at_broker, changed = found
    assert (missing_locally.symbol, missing_locally.local) == ("SPY", None)
    assert missing_locally.broker == {"qty": D("0.25"), "side": "long", "avg_entry_price": D(100)}
    assert (missing_at_broker.symbol, missing_at_broker.broker) == ("MSFT", None)
    assert changed.symbol == "AAPL"
    assert (changed.local or {})["side"] == "long" and (changed.broker or {})["side"] == "short"


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        ("filled", "order_filled"),
        ("canceled", "order_canceled"),
        ("rejected", "order_rejected"),
        ("expired", "order_expired"),
        ("done_for_day", "order_expired"),
        ("replaced", "order_canceled"),
    ],
)
def test_order_ended_while_not_listening(status: str, kind: str) -> None:
    local = State.from_snapshot(snapshot(open_orders=(order(),)))
    filled = D(100) if status == "filled" else D(0)
    ended = order(status=status, filled_qty=filled)
    [found] = diff(local, snapshot(final_orders=(ended,)))
    assert found.kind == kind
    assert (found.order_id, found.client_order_id, found.symbol) == ("o-1", "c-o-1", "AAPL")
    assert (found.local or {})["status"] == "new"
    assert (found.broker or {})["status"] == status
    assert (found.broker or {})["filled_qty"] == filled


def test_partial_fill_missed() -> None:
    local = State.from_snapshot(snapshot(open_orders=(order(),)))
    ahead = order(status="partially_filled", filled_qty=D(40), filled_avg_price=D(189))
    [found] = diff(local, snapshot((long("AAPL", "40"),), (ahead,)))[-1:]
    assert found.kind == "partial_fill_missed"
    assert ((found.local or {})["filled_qty"], (found.broker or {})["filled_qty"]) == (D(0), D(40))


def test_order_unknown_locally() -> None:
    local = State.from_snapshot(snapshot())
    [found] = diff(local, snapshot(open_orders=(order("o-9"),)))
    assert (found.kind, found.order_id, found.local) == ("order_unknown_locally", "o-9", None)


def test_order_missing_at_broker() -> None:
    local = State.from_snapshot(snapshot(open_orders=(order(),)))
    [found] = diff(local, snapshot())
    assert (found.kind, found.order_id, found.broker) == ("order_missing_at_broker", "o-1", None)
    assert missed_events(local, snapshot()) == []


def test_final_order_that_is_still_open_counts_as_open() -> None:
    local = State.from_snapshot(snapshot(open_orders=(order(),)))
    assert diff(local, snapshot(final_orders=(order(status="accepted"),))) == []


def test_output_is_grouped_by_kind_then_symbol_then_order() -> None:
    local = State.from_snapshot(snapshot(open_orders=(order("b", symbol="MSFT"), order("a"))))
    truth = snapshot(
        (long("TSLA", "1"), long("MSFT", "2")),
        open_orders=(order("z", symbol="SPY"), order("y", symbol="AAPL")),
        final_orders=(order("b", symbol="MSFT", status="canceled"), order("a", status="canceled")),
    )
    found = diff(local, truth)
    assert [(d.kind, d.symbol, d.order_id) for d in found] == [
        ("position_missing_locally", "MSFT", None),
        ("position_missing_locally", "TSLA", None),
        ("order_canceled", "AAPL", "a"),
        ("order_canceled", "MSFT", "b"),
        ("order_unknown_locally", "AAPL", "y"),
        ("order_unknown_locally", "SPY", "z"),
    ]
    assert found == diff(local, truth)
    assert set(KINDS) == POSITION_KINDS | ORDER_KINDS | {"account_changed"}


def test_difference_line_carries_the_contract_fields() -> None:
    local = State.from_snapshot(snapshot())
    line = diff(local, snapshot(open_orders=(order(),)))[0].to_dict()
    assert line["type"] == "difference"
    assert line["kind"] == "order_unknown_locally"
    assert {"symbol", "order_id", "client_order_id", "local", "broker", "detail"} <= line.keys()


# --- missed events -------------------------------------------------------------


def test_recovered_fill_reports_only_the_missed_quantity() -> None:
    """The contract's example: a fill recovered after a partial fill of 40 of 100."""
    partial = order(status="partially_filled", filled_qty=D(40), filled_avg_price=D(10))
    local = State.from_snapshot(snapshot((long("AAPL", "40", "10"),), (partial,)))
    done = order(status="filled", filled_qty=D(100), filled_avg_price=D(11), filled_at=LATER)
    truth = snapshot((long("AAPL", "100", "11"),), final_orders=(done,), taken_at=LATER)
    [recovered] = missed_events(local, truth)
    assert recovered.event == "fill"
    assert recovered.source == "reconcile"
    assert (recovered.qty, recovered.order.filled_qty, recovered.order.status) == (
        D(60),
        D(100),
        "filled",
    )
    assert recovered.price == D("11.666667")  # the 60 missed shares alone
    assert recovered.timestamp == LATER
    after = apply(local, recovered)
    assert diff(after, truth) == []
    assert after.positions["AAPL"].qty == D(100)


def test_canceled_after_an_unseen_partial_fill() -> None:
    local = State.from_snapshot(snapshot(open_orders=(order(),)))
    ended = order(status="canceled", filled_qty=D(30), filled_avg_price=D(5), canceled_at=LATER)
    truth = snapshot((long("AAPL", "30", "5"),), final_orders=(ended,))
    recovered = missed_events(local, truth)
    assert [(e.event, e.order.status, e.qty) for e in recovered] == [
        ("partial_fill", "partially_filled", D(30)),
        ("canceled", "canceled", None),
    ]
    assert diff(apply_all(local, recovered), truth) == []


@pytest.mark.parametrize("status", ["canceled", "expired", "rejected"])
def test_order_ended_without_fills_gives_one_event(status: str) -> None:
    local = State.from_snapshot(snapshot(open_orders=(order(),)))
    [recovered] = missed_events(local, snapshot(final_orders=(order(status=status),)))
    assert (recovered.event, recovered.qty, recovered.source) == (status, None, "reconcile")


def test_unknown_order_gets_new_then_its_fills() -> None:
    local = State.from_snapshot(snapshot())
    stranger = order("o-9", status="partially_filled", filled_qty=D("2.5"), filled_avg_price=D(7))
    truth = snapshot((long("AAPL", "2.5", "7"),), (stranger,))
    recovered = missed_events(local, truth)
    assert [(e.event, e.order.filled_qty, e.qty) for e in recovered] == [
        ("new", D(0), None),
        ("partial_fill", D("2.5"), D("2.5")),
    ]
    assert diff(apply_all(local, recovered), truth) == []


def test_missed_events_are_ordered_by_submission() -> None:
    local = State.from_snapshot(snapshot(open_orders=(order("late", submitted_at=LATER),)))
    truth = snapshot(
        open_orders=(order("early"),),
        final_orders=(order("late", submitted_at=LATER, status="canceled"),),
    )
    assert [e.order.id for e in missed_events(local, truth)] == ["early", "late"]


# --- adopt -------------------------------------------------------------------


def test_adopt_takes_broker_truth_and_remembers_closed_orders() -> None:
    local = State.from_snapshot(snapshot((long("AAPL", "1"),), (order(), order("gone"))))
    done = order(status="filled", filled_qty=D(100), filled_avg_price=D(3))
    truth = snapshot((long("AAPL", "101"), long("SPY", "3")), (order("o-2"),), (done,))
    adopted = adopt(local, truth, LATER)
    assert diff(adopted, truth) == []
    assert adopted.last_reconciled_at == LATER
    assert list(adopted.open_orders) == ["o-2"]
    assert adopted.closed_orders["o-1"].status == "filled"
    assert adopted.closed_orders["gone"].status == "missing"
    # The stream may still deliver the fill the snapshot already counted.
    late_fill = dataclasses.replace(done)
    from alpaca_cli.domain import TradeUpdate

    replay = TradeUpdate(event="fill", order=late_fill, timestamp=T0, qty=D(100), price=D(3))
    assert apply(adopted, replay).positions == adopted.positions


# --- properties --------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(states())
def test_a_state_agrees_with_its_own_snapshot(state: State) -> None:
    assert diff(state, state.to_snapshot()) == []
    assert missed_events(state, state.to_snapshot()) == []


@settings(max_examples=100, deadline=None)
@given(snapshots())
def test_a_fresh_state_agrees_with_the_snapshot_it_came_from(truth: Snapshot) -> None:
    assert diff(State.from_snapshot(truth), truth) == []


@settings(max_examples=200, deadline=None)
@given(drift_cases())
def test_recovered_events_close_every_order_difference(
    case: tuple[State, Snapshot, bool],
) -> None:
    local, truth, moved_otherwise = case
    recovered = missed_events(local, truth)
    assert all(e.source == "reconcile" for e in recovered)
    assert missed_events(local, truth) == recovered
    caught_up = apply_all(local, recovered)
    left = diff(caught_up, truth)
    assert not [d for d in left if d.kind in ORDER_KINDS]
    if not moved_otherwise:
        assert not [d for d in left if d.kind in POSITION_KINDS]
    assert apply_all(caught_up, recovered) == caught_up
    assert missed_events(caught_up, truth) == []
    assert diff(adopt(caught_up, truth, LATER), truth) == []
    assert diff(adopt(local, truth, LATER), truth) == []


def test_ten_thousand_orders_reconcile_in_well_under_a_second() -> None:
    orders = tuple(
        order(f"o-{i}", symbol=f"S{i % 2000}", submitted_at=T0 + timedelta(seconds=i)) for i in range(10_000)
    )
    held = tuple(long(f"S{i}", str(i + 1)) for i in range(2000))
    truth = snapshot(held, orders)
    # CPU time, not wall time: the cost of the work, whatever else the machine runs at once.
    began = time.process_time()
    local = State.from_snapshot(truth)
    reloaded = State.model_validate_json(local.model_dump_json())
    assert diff(reloaded, truth) == []
    assert missed_events(reloaded, truth) == []
    assert time.process_time() - began < 1.0
