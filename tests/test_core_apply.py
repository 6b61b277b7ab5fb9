"""`apply`: one transition per event type, and its idempotency properties."""

from __future__ import annotations

import dataclasses
import importlib
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import ACCOUNT_ID, histories, interleave, states, trade_updates

from alpaca_cli.core import Ledger, State, apply, apply_all, initial_state
from alpaca_cli.domain import Account, Order, Position, Snapshot, TradeUpdate

T0 = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)
D = Decimal
# The package re-exports the function `apply`, which hides the module of that name.
apply_module = importlib.import_module("alpaca_cli.core.apply")
state_module = importlib.import_module("alpaca_cli.core.state")


def order(**fields: object) -> Order:
    base = {
        "id": "o-1",
        "client_order_id": "c-1",
        "symbol": "AAPL",
        "side": "buy",
        "type": "limit",
        "time_in_force": "day",
        "status": "new",
        "submitted_at": T0,
        "qty": D(100),
        "limit_price": D("190.5"),
    }
    base.update(fields)
    return Order(**base)  # type: ignore[arg-type]


def event(name: str, the_order: Order, *, seconds: int = 1, **fields: object) -> TradeUpdate:
    return TradeUpdate(event=name, order=the_order, timestamp=T0 + timedelta(seconds=seconds), **fields)  # type: ignore[arg-type]


def fill(cumulative: str, price: str, *, final: bool = False, **fields: object) -> TradeUpdate:
    """A fill bringing order o-1 to `cumulative` shares at `price` each."""
    status = "filled" if final else "partially_filled"
    the_order = order(status=status, filled_qty=D(cumulative), filled_avg_price=D(price))
    fields.setdefault("seconds", int(D(cumulative)) + 1)
    return event("fill" if final else "partial_fill", the_order, price=D(price), **fields)  # type: ignore[arg-type]


def start(*positions: Position) -> State:
    snapshot = Snapshot(
        account=Account(id=ACCOUNT_ID, account_number="PA1", status="ACTIVE"),
        positions=positions,
        open_orders=(),
        taken_at=T0,
    )
    return initial_state(snapshot)


def signed_positions(state: State) -> dict[str, Decimal]:
    return {symbol: p.signed_qty for symbol, p in state.positions.items()}


@pytest.mark.parametrize("name", ["new", "accepted", "pending_new"])
def test_opening_events_add_the_open_order(name: str) -> None:
    state = apply(start(), event(name, order(status=name)))
    assert list(state.open_orders) == ["o-1"]
    assert state.open_orders["o-1"].status == name
    assert state.positions == {}


def test_partial_fill_moves_position_and_keeps_order_open() -> None:
    state = apply(apply(start(), event("new", order())), fill("40", "190", qty=D(40)))
    assert state.open_orders["o-1"].filled_qty == D(40)
    assert state.open_orders["o-1"].status == "partially_filled"
    position = state.positions["AAPL"]
    assert (position.qty, position.side, position.avg_entry_price) == (D(40), "long", D(190))


def test_fill_closes_order_and_position_counts_every_share() -> None:
    state = apply_all(
        start(),
        [
            event("new", order()),
            fill("40", "190", qty=D(40), execution_id="x1"),
            fill("100", "191", qty=D(60), execution_id="x2", final=True),
        ],
    )
    assert state.open_orders == {}
    assert state.closed_orders["o-1"].filled_qty == D(100)
    assert state.closed_orders["o-1"].status == "filled"
    assert state.positions["AAPL"].qty == D(100)
    assert state.positions["AAPL"].avg_entry_price == D("190.6")
    assert state.execution_ids == ("x1", "x2")


@pytest.mark.parametrize("execution_id", ["x2", None])
def test_replayed_fill_after_close_changes_nothing(execution_id: str | None) -> None:
    final = fill("100", "191", qty=D(100), execution_id=execution_id, final=True)
    once = apply(apply(start(), event("new", order())), final)
    assert "o-1" not in once.open_orders
    assert apply(once, final) is once


def test_replayed_partial_fill_without_execution_id_changes_nothing() -> None:
    partial = fill("40", "190", qty=D(40))
    once = apply(start(), partial)
    assert apply(once, partial) is once
    assert once.positions["AAPL"].qty == D(40)


def test_stale_partial_fill_after_final_fill_changes_nothing() -> None:
    done = apply(start(), fill("100", "191", final=True))
    late = fill("40", "190", qty=D(40), seconds=0)
    assert apply(done, late) is done


def test_missed_partial_fill_is_caught_up_by_cumulative_quantity() -> None:
    """Only the final fill (60 @ 192) arrives; the order averaged 191.2 over 100."""
    final = event(
        "fill",
        order(status="filled", filled_qty=D(100), filled_avg_price=D("191.2")),
        price=D(192),
        qty=D(60),
    )
    state = apply(apply(start(), event("new", order())), final)
    assert state.positions["AAPL"].qty == D(100)
    assert state.positions["AAPL"].avg_entry_price == D("191.2")


def test_cancel_carrying_an_unseen_partial_fill_moves_position() -> None:
    canceled = event("canceled", order(status="canceled", filled_qty=D(30), filled_avg_price=D(5)))
    state = apply(apply(start(), event("new", order())), canceled)
    assert state.positions["AAPL"].qty == D(30)
    assert state.closed_orders["o-1"].status == "canceled"
    assert state.closed_orders["o-1"].filled_qty == D(30)


@pytest.mark.parametrize("name", ["canceled", "expired", "rejected", "done_for_day", "replaced", "stopped"])
def test_closing_events_close_the_order(name: str) -> None:
    state = apply(apply(start(), event("new", order())), event(name, order(status=name)))
    assert state.open_orders == {}
    assert state.closed_orders["o-1"].status == name
    assert state.positions == {}


@pytest.mark.parametrize("name", ["order_cancel_rejected", "order_replace_rejected", "pending_cancel", "restated"])
def test_rejected_requests_and_pending_events_keep_the_order_open(name: str) -> None:
    opened = apply(start(), event("new", order()))
    state = apply(opened, event(name, order(status="accepted"), seconds=5))
    assert state.open_orders["o-1"].status == "accepted"
    assert state.last_event is not None and state.last_event.event == name


def test_closed_order_is_not_reopened_by_a_late_event() -> None:
    closed = apply(apply(start(), event("new", order())), event("canceled", order(status="canceled")))
    late = apply(closed, event("accepted", order(status="accepted"), seconds=0))
    assert late.open_orders == {}
    assert late.closed_orders == closed.closed_orders


def test_unknown_event_is_recorded_and_changes_nothing_else() -> None:
    opened = apply(start(), event("new", order()))
    novel = event("teleported", order(status="mystery", filled_qty=D(50)), seconds=9)
    state = apply(opened, novel)
    assert state.last_event is not None and state.last_event.event == "teleported"
    assert state.model_dump(exclude={"last_event"}) == opened.model_dump(exclude={"last_event"})


def test_last_event_is_the_newest_by_timestamp_not_by_arrival() -> None:
    newer = event("new", order(), seconds=10, execution_id=None)
    older = event("accepted", order(id="o-2", status="accepted"), seconds=3)
    state = apply_all(start(), [newer, older])
    assert state.last_event is not None
    assert (state.last_event.event, state.last_event.order_id) == ("new", "o-1")
    assert state.last_event.timestamp == T0 + timedelta(seconds=10)
    assert "o-2" in state.open_orders


def test_sells_shrink_close_and_flip_a_position() -> None:
    state = start(Position(symbol="AAPL", qty=D(10), side="long", avg_entry_price=D(100)))

    def sell(oid: str, qty: str, price: str) -> TradeUpdate:
        sold = order(id=oid, side="sell", qty=D(qty), status="filled", filled_qty=D(qty))
        return event("fill", sold, price=D(price), qty=D(qty))

    shrunk = apply(state, sell("s1", "4", "120"))
    assert (shrunk.positions["AAPL"].qty, shrunk.positions["AAPL"].avg_entry_price) == (D(6), D(100))
    flat = apply(shrunk, sell("s2", "6", "121"))
    assert "AAPL" not in flat.positions
    flipped = apply(shrunk, sell("s3", "8.5", "122"))
    position = flipped.positions["AAPL"]
    assert (position.qty, position.side, position.avg_entry_price) == (D("2.5"), "short", D(122))


def test_short_position_grows_with_weighted_average() -> None:
    state = start(Position(symbol="AAPL", qty=D(2), side="short", avg_entry_price=D(10)))
    sold = order(side="sell", qty=D("0.5"), status="filled", filled_qty=D("0.5"))
    after = apply(state, event("fill", sold, price=D(20), qty=D("0.5")))
    assert after.positions["AAPL"].signed_qty == D("-2.5")
    assert after.positions["AAPL"].avg_entry_price == D(12)


def test_apply_never_mutates_its_input() -> None:
    before = apply(start(), event("new", order()))
    dumped = before.model_dump()
    apply(before, fill("100", "191", qty=D(100), final=True, execution_id="x"))
    assert before.model_dump() == dumped


def test_closed_order_memory_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(apply_module, "CLOSED_ORDERS_LIMIT", 3)
    events = [event("canceled", order(id=f"o-{i}", status="canceled")) for i in range(5)]
    state = apply_all(start(), events)
    assert list(state.closed_orders) == ["o-2", "o-3", "o-4"]


def test_execution_id_memory_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(apply_module, "EXECUTION_IDS_LIMIT", 2)
    state = start()
    for i in range(1, 5):
        state = apply(state, fill(str(i * 10), "5", qty=D(10), execution_id=f"x{i}"))
    assert state.execution_ids == ("x3", "x4")
    assert state.positions["AAPL"].qty == D(40)


@settings(max_examples=150, deadline=None)
@given(states(), trade_updates())
def test_applying_one_event_twice_equals_once(state: State, update: TradeUpdate) -> None:
    once = apply(state, update)
    assert apply(once, update) == once


@settings(max_examples=150, deadline=None)
@given(states(), st.data())
def test_applying_a_sequence_twice_equals_once(state: State, data: st.DataObject) -> None:
    stream = interleave(data.draw, data.draw(histories()))
    stream += data.draw(st.lists(trade_updates(), max_size=3))
    once = apply_all(state, stream)
    assert apply_all(state, stream + stream) == once
    assert apply_all(state, [e for e in stream for _ in range(2)]) == once
    assert apply_all(once, stream) == once


@settings(max_examples=150, deadline=None)
@given(states(), st.data())
def test_final_positions_do_not_depend_on_arrival_order(state: State, data: st.DataObject) -> None:
    lifecycles = data.draw(histories())
    in_order = apply_all(state, interleave(data.draw, lifecycles))
    every_event = [e for lc in lifecycles for e in lc]
    shuffled = apply_all(state, data.draw(st.permutations(every_event)))
    assert signed_positions(shuffled) == signed_positions(in_order)
    other_interleaving = apply_all(state, interleave(data.draw, lifecycles))
    assert other_interleaving.open_orders == in_order.open_orders
    assert other_interleaving.closed_orders == in_order.closed_orders
    assert other_interleaving.last_event == in_order.last_event


@settings(max_examples=100, deadline=None)
@given(states(), st.lists(trade_updates(), max_size=5))
def test_apply_matches_apply_all_and_leaves_input_alone(state: State, stream: list[TradeUpdate]) -> None:
    dumped = state.model_dump()
    one_by_one = state
    for update in stream:
        one_by_one = apply(one_by_one, update)
    assert apply_all(state, stream) == one_by_one
    assert state.model_dump() == dumped


@given(trade_updates())
def test_an_events_sort_key_is_its_last_event_records(update: TradeUpdate) -> None:
    assert state_module.sort_key(update) == state_module.LastEvent.from_update(update).sort_key()


@given(states(), st.data())
def test_a_state_read_between_events_is_never_changed_by_later_ones(state: State, data: st.DataObject) -> None:
    """Copy-on-write: what `result()` (and so `Ledger.state`) hands out stays a value."""
    stream = interleave(data.draw, data.draw(histories()))
    stream += data.draw(st.lists(trade_updates(), max_size=3))
    work = apply_module.Transition(state)
    ledger = Ledger(state)
    handed_out: list[tuple[State, dict[str, object]]] = [(state, state.model_dump())]
    for update in stream:
        work.apply(update)
        ledger.admit(update)
        if data.draw(st.booleans()):
            for read in (work.result(), ledger.state):
                handed_out.append((read, read.model_dump()))
    assert work.result() == apply_all(state, stream)
    for read, dumped in handed_out:
        assert read.model_dump() == dumped


def test_fractional_fills_add_up_exactly() -> None:
    state = start()
    cumulative = D(0)
    for i in range(1, 11):
        cumulative += D("0.1")
        partial = dataclasses.replace(order(qty=D(1)), status="partially_filled", filled_qty=cumulative)
        state = apply(state, event("partial_fill", partial, seconds=i, price=D(3), qty=D("0.1")))
    assert state.positions["AAPL"].qty == D(1)
