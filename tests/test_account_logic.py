"""The pieces under `orders`, `close`, `replace`, `activities`, `calendar` and `assets`, without a network.

Mapping: a missing or mistyped field is `MalformedAnswer` (exit 4), never data.
Closing and replacing: scripted brokers for what the sandbox cannot produce
on cue: a request that never arrived (so a second one must go), and a lost
answer whose lookup fails too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from alpaca_cli import closing, replacing
from alpaca_cli.bridge import mapping
from alpaca_cli.domain import Closing, Order, OrderChanges, Position
from alpaca_cli.errors import BrokerRejected, UnreachableError, UsageError

T0 = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)


def test_calendar_asset_and_activity_are_checked() -> None:
    [day] = mapping.calendar([{"date": "2026-12-24", "open": "09:30", "close": "13:00"}])
    assert (day.date.isoformat(), day.close) == ("2026-12-24", "13:00")
    with pytest.raises(mapping.MalformedAnswer):
        mapping.calendar([{"date": "Dec 24", "open": "09:30", "close": "13:00"}])
    with pytest.raises(mapping.MalformedAnswer):
        mapping.asset({"symbol": "AAPL", "status": "active", "tradable": "yes"})
    fill = mapping.activity(
        {
            "id": "20261130100000000::x",
            "activity_type": "FILL",
            "transaction_time": "2026-11-30T15:00:00Z",
            "qty": "2.5",
            "price": "187.125",
            "side": "buy",
            "symbol": "AAPL",
        }
    )
    assert fill.qty == Decimal("2.5") and fill.price == Decimal("187.125") and fill.at == T0
    with pytest.raises(mapping.MalformedAnswer):
        mapping.activity({"activity_type": "DIV"})
    with pytest.raises(mapping.MalformedAnswer):
        mapping.closings([{"symbol": "AAPL", "status": "200"}])


def test_an_order_carries_its_class_and_legs() -> None:
    raw = {
        "id": "a",
        "symbol": "AAPL",
        "side": "buy",
        "status": "new",
        "submitted_at": "2026-11-30T15:00:00Z",
        "order_class": "bracket",
        "legs": [
            {"id": "b", "symbol": "AAPL", "side": "sell", "status": "held", "submitted_at": "2026-11-30T15:00:00Z"}
        ],
    }
    order = mapping.order(raw)
    assert order.order_class == "bracket" and [leg.id for leg in order.legs] == ["b"]
    with pytest.raises(mapping.MalformedAnswer):
        mapping.order({**raw, "legs": [{"id": "b"}]})


def _order(oid: str, side: str, at: datetime, **extra: Any) -> Order:
    return Order(oid, f"c-{oid}", "AAPL", side, "market", "day", "new", at, qty=Decimal(5), **extra)


class LosingCloser:
    """Loses the first close (outcome unknown); `arrived` says whether the broker had acted on it."""

    deadline = 5.0

    def __init__(self, arrived: bool) -> None:
        self.arrived = arrived
        self.closes = 0
        self.book = [_order("old", "sell", T0)]

    async def orders(self, status: str = "open", *, symbols: Iterable[str] | None = None, **kw: Any) -> list[Order]:
        after = kw.get("after")
        return [o for o in self.book if after is None or o.submitted_at > after]

    async def close_position(self, symbol: str, **_: Any) -> Order:
        self.closes += 1
        made = _order(f"close-{self.closes}", "sell", T0 + timedelta(seconds=self.closes))
        if self.closes == 1:
            if self.arrived:
                self.book.append(made)
            raise UnreachableError("connection dropped")
        self.book.append(made)
        return made

    async def close_all_positions(self, *, cancel_orders: bool = False) -> list[Closing]:
        raise AssertionError("not used")


LONG = Position("AAPL", Decimal(5), "long", Decimal(100))


def test_close_after_a_lost_answer_that_arrived_sends_nothing_more() -> None:
    broker = LosingCloser(arrived=True)
    done = asyncio.run(closing.close(broker, LONG))  # type: ignore[arg-type]
    assert broker.closes == 1 and done.recovered
    assert done.closings[0].order is not None and done.closings[0].order.id == "close-1"


class FakeTime:
    """A clock that sleeping moves forward: patience measured in seconds, spent in none."""

    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.now += seconds


def test_close_that_never_arrived_is_sent_once_more_after_the_patience_and_labelled_sent() -> None:
    broker = LosingCloser(arrived=False)
    time = FakeTime()
    done = asyncio.run(closing.close(broker, LONG, sleep=time.sleep, clock=time.clock))  # type: ignore[arg-type]
    assert broker.closes == 2 and not done.recovered and done.sends == 2
    assert done.closings[0].order is not None and done.closings[0].order.id == "close-2"
    assert time.now >= broker.deadline  # listings showed nothing for the whole deadline before the resend


class LaggingCloser:
    """The first close (one or all) acts but its answer is lost; listings show it only from the `lag`-th on."""

    deadline = 5.0

    def __init__(self, lag: int, listings_fail_from: int | None = None) -> None:
        self.lag, self.listings_fail_from = lag, listings_fail_from
        self.closes = self.listings = 0
        self.book: list[Order] = []

    async def orders(self, status: str = "open", *, symbols: Iterable[str] | None = None, **kw: Any) -> list[Order]:
        if kw.get("limit") == 1:
            return []  # the marker: nothing before
        self.listings += 1
        if self.listings_fail_from is not None and self.listings >= self.listings_fail_from:
            raise UnreachableError("timed out")
        return self.book if self.listings >= self.lag else []

    def _act(self) -> Order:
        self.closes += 1
        made = _order(f"close-{self.closes}", "sell", T0 + timedelta(seconds=self.closes))
        self.book.append(made)
        return made

    async def close_position(self, symbol: str, **_: Any) -> Order:
        made = self._act()
        if self.closes == 1:
            raise UnreachableError("connection dropped")
        return made

    async def close_all_positions(self, *, cancel_orders: bool = False) -> list[Closing]:
        made = self._act()
        if self.closes == 1:
            raise UnreachableError("connection dropped")
        return [Closing(made.symbol, 200, made)]


@pytest.mark.parametrize("every", [False, True], ids=["one", "all"])
def test_a_lagging_listing_is_asked_again_and_nothing_is_closed_twice(every: bool) -> None:
    broker = LaggingCloser(lag=4)
    time = FakeTime()
    if every:
        done = asyncio.run(closing.close_all(broker, [LONG], sleep=time.sleep, clock=time.clock))  # type: ignore[arg-type]
    else:
        done = asyncio.run(closing.close(broker, LONG, sleep=time.sleep, clock=time.clock))  # type: ignore[arg-type]
    assert broker.closes == 1 and done.recovered and done.sends == 1
    assert [c.order.id for c in done.closings if c.order is not None] == ["close-1"]
    assert time.now < broker.deadline


def test_a_close_whose_listings_end_failing_is_not_resent() -> None:
    broker = LaggingCloser(lag=100, listings_fail_from=3)
    time = FakeTime()
    with pytest.raises(UnreachableError, match="may have acted") as unknown:
        asyncio.run(closing.close(broker, LONG, sleep=time.sleep, clock=time.clock))  # type: ignore[arg-type]
    assert broker.closes == 1 and unknown.value.exit_code == 4


class LosingReplacer:
    """Loses every PATCH; the replacement exists only when `arrived`; lookups may fail."""

    deadline = 5.0

    def __init__(self, arrived: bool, lookups_fail: bool = False, answer_from: int | None = None) -> None:
        self.arrived, self.lookups_fail, self.patches = arrived, lookups_fail, 0
        self.answer_from = answer_from  # from this PATCH on, answered (the replacement)

    async def order(self, order_id: str, *, nested: bool = False) -> Order:
        return _order(order_id, "buy", T0)

    async def order_by_client_id(self, client_order_id: str) -> Order | None:
        if self.lookups_fail:
            raise UnreachableError("timed out")
        return _order("new", "buy", T0, replaces="old") if self.arrived else None

    async def replace_order(self, order_id: str, changes: OrderChanges) -> Order:
        self.patches += 1
        if self.answer_from is not None and self.patches >= self.answer_from:
            return _order("new", "buy", T0, replaces="old")
        raise UnreachableError("connection dropped")


def test_replace_looks_before_a_second_patch_and_stops_after_two() -> None:
    changes = replacing.validate_changes(qty="7")
    found = LosingReplacer(arrived=True)
    assert asyncio.run(replacing.replace(found, _order("old", "buy", T0), changes)).order.id == "new"  # type: ignore[arg-type]
    assert found.patches == 1
    lost = LosingReplacer(arrived=False)
    with pytest.raises(UnreachableError, match="nothing was replaced"):
        asyncio.run(replacing.replace(lost, _order("old", "buy", T0), changes))  # type: ignore[arg-type]
    assert lost.patches == 2
    blind = LosingReplacer(arrived=False, lookups_fail=True)
    with pytest.raises(UnreachableError, match="may have replaced it") as unknown:
        asyncio.run(replacing.replace(blind, _order("old", "buy", T0), changes))  # type: ignore[arg-type]
    assert blind.patches == 1 and changes.client_order_id in unknown.value.line()


def test_replace_flags_must_fit_the_order() -> None:
    changes = replacing.validate_changes(stop_price="5")
    with pytest.raises(UsageError, match="does not apply"):
        replacing.check_applies(_order("old", "buy", T0), changes)
    assert replacing.validate_changes(client_order_id="mine", time_in_force="GTC").time_in_force == "gtc"


def test_a_second_patch_that_is_answered_is_labelled_sent_not_recovered() -> None:
    broker = LosingReplacer(arrived=False, answer_from=2)
    done = asyncio.run(replacing.replace(broker, _order("old", "buy", T0), replacing.validate_changes(qty="7")))  # type: ignore[arg-type]
    assert broker.patches == 2 and not done.recovered and done.sends == 2


class RefusingReplacer(LosingReplacer):
    """The first PATCH acts but its answer is lost, and lookups lag; the second is refused as a duplicate."""

    def __init__(self, found_after_refusal: bool) -> None:
        super().__init__(arrived=False)
        self.found_after_refusal = found_after_refusal

    async def order_by_client_id(self, client_order_id: str) -> Order | None:
        if self.patches >= 2 and self.found_after_refusal:
            return _order("new", "buy", T0, replaces="old")
        return None

    async def replace_order(self, order_id: str, changes: OrderChanges) -> Order:
        self.patches += 1
        if self.patches == 1:
            raise UnreachableError("connection dropped")
        raise BrokerRejected("client_order_id must be unique", status=422)


def test_a_refusal_after_a_lost_answer_is_exit_4_naming_the_replacement() -> None:
    changes = replacing.validate_changes(qty="7")
    broker = RefusingReplacer(found_after_refusal=False)
    with pytest.raises(UnreachableError, match="may have replaced it") as unknown:
        asyncio.run(replacing.replace(broker, _order("old", "buy", T0), changes))  # type: ignore[arg-type]
    assert broker.patches == 2 and unknown.value.exit_code == 4
    assert changes.client_order_id in unknown.value.message and "must be unique" in unknown.value.message

    found = RefusingReplacer(found_after_refusal=True)
    done = asyncio.run(replacing.replace(found, _order("old", "buy", T0), changes))  # type: ignore[arg-type]
    assert done.recovered and done.order.id == "new"


def test_the_cli_choices_are_the_ones_validation_accepts() -> None:
    from alpaca_cli import choices, orders

    assert tuple(choices.Side) == orders.SIDES
    assert tuple(choices.OrderType) == orders.ORDER_TYPES
    assert tuple(choices.TimeInForce) == orders.TIME_IN_FORCE
    assert tuple(choices.OrderClass) == orders.ORDER_CLASSES
