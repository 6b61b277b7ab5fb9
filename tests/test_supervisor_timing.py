"""The supervisor's timing, in virtual time: backoff between attempts, polls while down, the slow
check while up, the reset of the backoff after a healthy connection, a prompt stop.

The supervisor runs on `VirtualTimeLoop` with a `Clock` on that loop and a fake broker that
answers at once (`SupervisedBroker`, `TradeStream`), so a schedule that spans minutes is
checked to the millisecond in a fraction of a real second. The same behaviour over real
sockets is covered end to end by test_tail.py (an outage with backoff, a mute stream).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import accumulate
from typing import Any, TypeVar

import pytest
from virtual_time import VirtualTimeLoop

from alpaca_cli.bridge.streams import StreamEvent
from alpaca_cli.domain import Account, Order, Position, Snapshot, TradeUpdate
from alpaca_cli.errors import AuthError, CliError, ConnectionLimitError, RouteNotFound, UnreachableError
from alpaca_cli.health import StreamName
from alpaca_cli.reconciling import IN_FLIGHT_GRACE, Clock
from alpaca_cli.supervisor import Backoff, Notice, Supervisor

T = TypeVar("T")
T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
ACCOUNT = Account(id="acct-1", account_number="PA1", status="ACTIVE")
SEED = 3

pytestmark = pytest.mark.timeout(20)


def virtual(scenario: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run `scenario()` on a virtual-time loop; it must take well under a real second."""
    began = time.monotonic()
    with asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:
        result = runner.run(scenario())
    assert time.monotonic() - began < 5
    return result


def clock() -> Clock:
    loop = asyncio.get_running_loop()
    return Clock(now=lambda: T0 + timedelta(seconds=loop.time()), monotonic=loop.time, sleep=asyncio.sleep)


def delays(n: int) -> list[float]:
    """The first `n` delays of a backoff seeded like the supervisor's (no healthy connection between)."""
    backoff = Backoff(rng=random.Random(SEED))
    return [backoff.next_delay() for _ in range(n)]


class FakeStream:
    """A connected trade-update stream, as the supervisor sees one."""

    def __init__(self) -> None:
        self.updates: asyncio.Queue[TradeUpdate] = asyncio.Queue()
        self.lifecycle: asyncio.Queue[StreamEvent] = asyncio.Queue()
        self.stopped_at: float | None = None
        self.take: Callable[[list[TradeUpdate]], None] | None = None

    def follow(self, take: Callable[[list[TradeUpdate]], None] | None) -> None:
        self.take = take
        if take is not None and not self.updates.empty():
            take([self.updates.get_nowait() for _ in range(self.updates.qsize())])

    def hear(self, *updates: TradeUpdate) -> None:
        """Updates arriving, as the bridge hands them over: to the follower, else queued."""
        if self.take is not None:
            self.take(list(updates))
        else:
            for update in updates:
                self.updates.put_nowait(update)

    async def stop(self) -> None:
        self.stopped_at = asyncio.get_running_loop().time()

    def drop(self, reason: str = "connection lost") -> None:
        self.lifecycle.put_nowait(StreamEvent(StreamName.trade_updates, "disconnected", T0, reason=reason))


class FakeBroker:
    """Answers at once; `connects` scripts each connection attempt (a stream or an error; past its
    end, the broker is unreachable). Records the (virtual) time of every attempt and snapshot."""

    def __init__(self, *connects: FakeStream | CliError) -> None:
        self.connects = list(connects)
        self.attempts: list[float] = []
        self.snapshots: list[float] = []
        self.open_orders: tuple[Order, ...] = ()

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    async def account(self) -> Account:
        return ACCOUNT

    async def positions(self) -> list[Position]:
        return []

    async def snapshot(self, believed_open: Any = None, *, closed_since: datetime | None = None) -> Snapshot:
        self.snapshots.append(self._now())
        return Snapshot(ACCOUNT, (), self.open_orders, T0 + timedelta(seconds=self._now()))

    async def trade_updates_connect(self, *, connect_timeout: float | None = None) -> FakeStream:
        self.attempts.append(self._now())
        outcome = self.connects.pop(0) if self.connects else UnreachableError("down")
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


class Run:
    """A supervisor on a fake broker, with what it printed and told."""

    def __init__(
        self, broker: FakeBroker, on_update: Callable[[TradeUpdate], None] | None = None, **options: Any
    ) -> None:
        self.broker = broker
        self.updates: list[TradeUpdate] = []
        self.notices: list[Notice] = []
        self.told_more = asyncio.Event()
        self.stop = asyncio.Event()
        self.supervisor = Supervisor(
            broker,  # type: ignore[arg-type]  # FakeStream is a TradeStream
            on_update=on_update or self.updates.append,
            on_notice=self._notice,
            backoff=Backoff(rng=random.Random(SEED)),
            clock=clock(),
            **options,
        )
        self.task = asyncio.create_task(self.supervisor.run(self.stop))

    def _notice(self, notice: Notice) -> None:
        self.notices.append(notice)
        self.told_more.set()

    def told(self, event: str) -> list[Notice]:
        return [n for n in self.notices if n.event == event]

    async def until(self, condition: Callable[[], bool]) -> None:
        """Wait until `condition()` holds, checked on every notice; fails if the run ends first."""
        while not condition():
            self.told_more.clear()
            told = asyncio.ensure_future(self.told_more.wait())
            await asyncio.wait({told, self.task}, return_when=asyncio.FIRST_COMPLETED)
            told.cancel()
            if self.task.done() and not condition():
                self.task.result()
                raise AssertionError("the run ended first")

    async def end(self) -> None:
        self.stop.set()
        await self.task


def seconds(notice: Notice) -> float:
    return (notice.at - T0).total_seconds()


def test_attempts_follow_the_backoff_schedule_while_polls_keep_the_poll_interval() -> None:
    failures = 7

    async def scenario() -> tuple[FakeBroker, Run]:
        stream = FakeStream()
        broker = FakeBroker(*[UnreachableError("down")] * (failures + 1), stream)
        run = Run(broker, poll_interval=10)
        await run.until(lambda: bool(run.told("connected")))
        await run.end()
        return broker, run

    broker, run = virtual(scenario)
    wait = delays(failures + 1)
    expected = [0.0, *accumulate(wait)]
    assert broker.attempts == pytest.approx(expected)
    assert expected[-1] > 60  # minutes of backoff, in no real time
    assert [n.retry_in for n in run.told("retrying")] == pytest.approx(wait[1:])
    # Polled at once when down (the start's snapshot), then every 10 s, and once more on connecting.
    polls = [t for t in broker.snapshots if t < expected[-1]]
    assert polls == pytest.approx([10.0 * k for k in range(len(polls))])
    assert len(polls) == int(expected[-1] // 10) + 1
    assert broker.snapshots[-1] == pytest.approx(expected[-1])
    assert seconds(run.told("connected")[0]) == pytest.approx(expected[-1])


def test_a_healthy_connection_starts_the_backoff_over_and_one_that_dies_young_does_not() -> None:
    async def scenario() -> tuple[FakeBroker, list[FakeStream]]:
        streams = [FakeStream(), FakeStream(), FakeStream()]
        broker = FakeBroker(*streams)
        run = Run(broker)
        await run.until(lambda: len(run.told("connected")) == 1)
        await asyncio.sleep(45)  # healthy: up longer than HEALTHY_AFTER
        streams[0].drop()
        await run.until(lambda: len(run.told("connected")) == 2)
        await asyncio.sleep(2)  # dies young
        streams[1].drop()
        await run.until(lambda: len(run.told("connected")) == 3)
        await run.end()
        assert streams[0].stopped_at == pytest.approx(45) and streams[1].stopped_at is not None
        return broker, streams

    broker, _ = virtual(scenario)
    first, second = delays(2)  # the schedule started over after the healthy one, then grew
    assert broker.attempts == pytest.approx([0, 45 + first, 45 + first + 2 + second])
    assert first <= 1.0 < second <= 2.0


def order(oid: str, status: str = "new") -> Order:
    return Order(
        id=oid,
        client_order_id=f"c-{oid}",
        symbol="AAPL",
        side="buy",
        type="market",
        time_in_force="day",
        status=status,
        submitted_at=T0,
        qty=Decimal(5),
    )


def new(oid: str) -> TradeUpdate:
    return TradeUpdate(event="new", order=order(oid), timestamp=T0 + timedelta(seconds=1))


def test_updates_are_taken_as_they_arrive_and_those_heard_while_reconciling_first() -> None:
    async def scenario() -> Run:
        stream = FakeStream()
        stream.hear(new("o-early"))  # heard before the supervisor follows the stream
        run = Run(FakeBroker(stream))
        await run.until(lambda: bool(run.told("connected")))
        assert [u.order.id for u in run.updates] == ["o-early"]
        stream.hear(new("o-1"), new("o-2"))
        assert [u.order.id for u in run.updates] == ["o-early", "o-1", "o-2"]  # at once, in order
        await run.end()
        return run

    run = virtual(scenario)
    assert [u.source for u in run.updates] == ["stream"] * 3


def test_what_the_stream_hands_over_while_a_stop_stops_it_is_still_taken() -> None:
    """A fill the SDK's thread heard just before a SIGINT reaches the tool's loop while the
    stream stops: it happened before the stop, so it is printed (with --state, saved), not
    left in a queue that nobody reads any more."""

    class LastWords(FakeStream):
        async def stop(self) -> None:
            self.hear(new("o-last"))
            await super().stop()

    async def scenario() -> Run:
        run = Run(FakeBroker(LastWords()))
        await run.until(lambda: bool(run.told("connected")))
        await run.end()
        return run

    run = virtual(scenario)
    assert [u.order.id for u in run.updates] == ["o-last"]


def test_an_error_in_taking_an_update_ends_the_run_with_it() -> None:
    """Taken in the bridge's hand-over callback, an error must reach the run, not the loop's handler."""

    def refuse(update: TradeUpdate) -> None:
        raise OSError(28, "No space left on device")

    async def scenario() -> None:
        stream = FakeStream()
        run = Run(FakeBroker(stream), on_update=refuse)
        await run.until(lambda: bool(run.told("connected")))
        stream.hear(new("o-1"))
        assert stream.take is None  # no more updates are taken after the error
        with pytest.raises(OSError, match="No space left"):
            await run.task

    virtual(scenario)


def test_an_error_in_taking_an_update_during_a_slow_poll_ends_the_run_too() -> None:
    """The slow poll finds a missed event while a live update fails to print: the run must end
    with the error, not reconnect for the missed event and go on as if nothing had happened."""

    class PollingBroker(FakeBroker):
        async def snapshot(self, believed_open: Any = None, *, closed_since: datetime | None = None) -> Snapshot:
            if len(self.snapshots) == 1:  # the first slow poll: a live update arrives meanwhile
                streams[0].hear(new("o-live"))
                self.open_orders = (order("o-mute"),)  # and the poll finds an event never heard
            return await super().snapshot(believed_open, closed_since=closed_since)

    def refuse(update: TradeUpdate) -> None:
        if update.order.id == "o-live":
            raise OSError(28, "No space left on device")

    streams = [FakeStream(), FakeStream()]

    async def scenario() -> Run:
        run = Run(PollingBroker(*streams), on_update=refuse, slow_poll=60)
        with pytest.raises(OSError, match="No space left"):
            await run.task
        return run

    run = virtual(scenario)
    assert len(run.told("connected")) == 1 and not run.told("mute")


def test_the_slow_poll_catches_a_mute_stream_and_forces_a_reconnection() -> None:
    unheard = order("o-mute")

    async def scenario() -> tuple[FakeBroker, Run, list[FakeStream]]:
        streams = [FakeStream(), FakeStream()]
        broker = FakeBroker(*streams)
        run = Run(broker, slow_poll=60)
        await run.until(lambda: bool(run.told("connected")))
        await asyncio.sleep(30)
        broker.open_orders = (unheard,)  # placed, and the stream says nothing
        await run.until(lambda: len(run.told("connected")) == 2)
        await run.end()
        return broker, run, streams

    broker, run, streams = virtual(scenario)
    [mute] = run.told("mute")
    assert mute.recovered == 1 and seconds(mute) == pytest.approx(60 + IN_FLIGHT_GRACE)
    assert streams[0].stopped_at == pytest.approx(60 + IN_FLIGHT_GRACE)
    assert broker.snapshots[:2] == pytest.approx([0, 60])  # the start, then the first slow poll
    [first] = delays(1)
    assert broker.attempts == pytest.approx([0, 60 + IN_FLIGHT_GRACE + first])
    assert [(u.order.id, u.event, u.source) for u in run.updates] == [("o-mute", "new", "reconcile")]
    assert run.supervisor.figures.mute_reconnects == 1


def test_a_quiet_but_working_stream_is_polled_every_slow_poll_and_kept() -> None:
    async def scenario() -> tuple[FakeBroker, Run]:
        broker = FakeBroker(FakeStream())
        run = Run(broker, slow_poll=60)
        await run.until(lambda: bool(run.told("connected")))
        await asyncio.sleep(200)
        await run.end()
        return broker, run

    broker, run = virtual(scenario)
    step = 60 + IN_FLIGHT_GRACE
    assert broker.snapshots == pytest.approx([0, 60, 60 + step, 60 + 2 * step])
    assert broker.attempts == [0] and not run.told("mute")
    assert run.supervisor.figures.reconciliations == 4


def test_a_stop_during_a_long_backoff_returns_at_once() -> None:
    async def scenario() -> tuple[FakeBroker, float]:
        broker = FakeBroker(*[UnreachableError("down")] * 10)
        run = Run(broker, poll_interval=100)
        await run.until(lambda: len(broker.attempts) == 6)  # the next waits 15 to 30 s
        stopping = asyncio.get_running_loop().time()
        await run.end()
        return broker, asyncio.get_running_loop().time() - stopping

    broker, took = virtual(scenario)
    assert took == 0 and len(broker.attempts) == 6


PERMANENT = [AuthError("refused"), ConnectionLimitError("another holder"), RouteNotFound("404 at the upgrade")]
PERMANENT_IDS = ["refused-keys", "connection-limit", "no-such-route"]


@pytest.mark.parametrize("error", PERMANENT, ids=PERMANENT_IDS)
def test_a_permanent_refusal_at_the_start_ends_the_run_with_it(error: CliError) -> None:
    """A stream URL that 404s while REST answers is as final as refused keys: no retrying forever."""

    async def scenario() -> tuple[FakeBroker, Run]:
        broker = FakeBroker(error)
        run = Run(broker)
        with pytest.raises(type(error)):
            await run.task
        return broker, run

    broker, run = virtual(scenario)
    assert broker.attempts == [0]
    assert run.supervisor.figures.last_error == error.line()  # what the health file tells `status`


@pytest.mark.parametrize("error", PERMANENT, ids=PERMANENT_IDS)
def test_a_permanent_refusal_on_reconnecting_ends_the_run_with_it(error: CliError) -> None:
    async def scenario() -> tuple[FakeBroker, Run]:
        stream = FakeStream()
        broker = FakeBroker(stream, error)
        run = Run(broker)
        await run.until(lambda: bool(run.told("connected")))
        stream.drop()
        with pytest.raises(type(error)):
            await run.task
        return broker, run

    broker, run = virtual(scenario)
    [first] = delays(1)
    assert broker.attempts == pytest.approx([0, first])
    assert run.told("failed")[0].error is error
    assert run.supervisor.figures.mode == "stopped"


def test_the_bridge_gives_the_connection_limit_grace_from_the_end_of_our_own_last_connection() -> None:
    from alpaca_cli.bridge import Broker
    from alpaca_cli.bridge.streams import LIMIT_GRACE, TradeUpdateStream
    from alpaca_cli.config import load_settings, resolve

    async def scenario() -> None:
        connection = resolve(load_settings(sandbox=True, sandbox_url="http://127.0.0.1:9"))
        broker = Broker(connection)
        first = broker._adopt(TradeUpdateStream(connection))
        assert first.held_until is None and not first.in_limit_grace(now=0.0)  # a first connection: none
        first.held_until = 100.0  # its connection ended then
        second = broker._adopt(TradeUpdateStream(connection))
        assert second.held_until == 100.0
        assert second.in_limit_grace(now=100.0 + LIMIT_GRACE - 0.01)
        assert not second.in_limit_grace(now=100.0 + LIMIT_GRACE)

    asyncio.run(scenario())
