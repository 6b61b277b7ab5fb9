"""The bridge's streaming half against the sandbox: real alpaca-py streams, real sockets.

Each test runs its own event loop (`asyncio.run`) as a command would, and
talks to the module's sandbox (bars every 0.5 s). Waiting is on lifecycle
events and queue contents, never on fixed sleeps.
"""

from __future__ import annotations

import asyncio
import logging
import selectors
import threading
import time
import uuid
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

import pytest
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosedError, InvalidStatus
from websockets.frames import Close
from websockets.http11 import Response

from alpaca_cli.bridge import Broker, mapping
from alpaca_cli.bridge.marketdata import MarketDataStream, data_refusal
from alpaca_cli.bridge.streams import (
    StreamEvent,
    StreamHandle,
    TradeUpdateStream,
    _HandingSelector,
    describe,
    trading_refusal,
)
from alpaca_cli.config import load_settings, resolve
from alpaca_cli.domain import Bar, OrderRequest, TradeUpdate
from alpaca_cli.errors import AuthError, ConnectionLimitError, UnreachableError, UsageError
from alpaca_cli.health import StreamName
from alpaca_cli.output import records

T = TypeVar("T")
pytestmark = pytest.mark.timeout(60)


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


def connection(sandbox: Any) -> Any:
    return resolve(load_settings(sandbox=True, sandbox_url=sandbox.url))


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait for a condition that no event announces (a counter reaching a value)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


async def next_event(handle: StreamHandle, kind: str, timeout: float = 10.0) -> StreamEvent:
    """The next lifecycle event of `kind`, skipping others."""
    while True:
        event = await asyncio.wait_for(handle.lifecycle.get(), timeout)
        if event.event == kind:
            return event


async def in_thread(fn: Callable[[], T]) -> T:
    return await asyncio.to_thread(fn)


def stream_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("alpaca-stream-")]


async def no_data_connections(sandbox: Any) -> None:
    """The sandbox allows one data connection per feed: wait until the last test's is gone."""
    await until(lambda: not sandbox.admin("GET", "/admin/streams")["data"])


async def no_trading_connections(sandbox: Any) -> None:
    await until(lambda: not sandbox.admin("GET", "/admin/streams")["trading"])


def market_order(symbol: str, qty: int = 1) -> OrderRequest:
    return OrderRequest(
        symbol=symbol,
        side="buy",
        type="market",
        time_in_force="day",
        client_order_id=f"bridge-{uuid.uuid4().hex[:16]}",
        qty=Decimal(qty),
    )


# ------------------------------------------------------------------ happy paths


def test_trade_updates_and_bars_arrive_as_domain_objects(sandbox: Any) -> None:
    async def scenario() -> None:
        await no_data_connections(sandbox)
        await no_trading_connections(sandbox)
        async with Broker(connection(sandbox)) as broker:
            bars = await broker.market_data_connect(["AAPL", "MSFT"])
            trades = await broker.trade_updates_connect()
            assert bars.connected.is_set() and trades.connected.is_set()
            names = {t.name for t in stream_threads()}
            assert {"alpaca-stream-market-data", "alpaca-stream-trade-updates"} <= names
            assert all(t.daemon for t in stream_threads())
            first = await asyncio.wait_for(bars.lifecycle.get(), 5)
            assert (first.stream, first.event, first.reconnects) == (StreamName.market_data, "connected", 0)

            seen: set[str] = set()
            while seen != {"AAPL", "MSFT"}:
                bar = await asyncio.wait_for(bars.items.get(), 5)
                assert isinstance(bar, Bar)
                assert bar.timestamp.tzinfo is not None and bar.low <= bar.close <= bar.high
                seen.add(bar.symbol)

            request = market_order("AAPL", 3)
            order = await broker.submit_order(request)
            events: list[TradeUpdate] = []
            while not events or events[-1].event != "fill":
                update = await asyncio.wait_for(trades.updates.get(), 5)
                assert isinstance(update, TradeUpdate)
                if update.order.client_order_id == request.client_order_id:
                    events.append(update)
            assert [e.event for e in events] == ["new", "fill"]
            fill = events[-1]
            assert fill.order.id == order.id and fill.qty == Decimal(3) and fill.price is not None
            assert fill.execution_id and fill.source == "stream"
            assert trades.health.received >= 2
        assert not stream_threads()

    run(scenario())


def test_a_10000_bar_burst_passes_with_zero_drops(sandbox: Any) -> None:
    async def scenario() -> None:
        await no_data_connections(sandbox)
        async with Broker(connection(sandbox)) as broker:
            bars = await broker.market_data_connect(["SPY", "QQQ", "IWM", "DIA"])
            got: list[Bar] = []

            async def consume() -> None:
                while True:
                    got.append(await bars.items.get())

            consumer = asyncio.create_task(consume())
            # The market closed: no regular bar (one every 0.5 s) joins the burst, which fills the
            # 10,000-bar queue exactly when the consumer lags (a loaded machine) and would drop them.
            await in_thread(lambda: sandbox.admin("POST", "/admin/market", {"open": False}))
            try:
                before = bars.health.received
                reply = await in_thread(lambda: sandbox.admin("POST", "/admin/burst", {"count": 10_000}))
                assert reply["delivered"] == 10_000
                await until(lambda: bars.health.received >= before + 10_000, timeout=30)
            finally:
                await in_thread(lambda: sandbox.admin("POST", "/admin/market", {"open": True}))
            consumer.cancel()
            assert bars.health.received == before + 10_000
            assert bars.health.dropped == 0
            assert len(got) + bars.items.qsize() == bars.health.received

    run(scenario())


# --------------------------------------------------------- back-pressure limits


def test_slow_consumer_is_bounded_and_the_newest_bars_are_dropped_and_counted(
    sandbox: Any, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        await no_data_connections(sandbox)
        async with Broker(connection(sandbox)) as broker:
            bars = await broker.market_data_connect(["SPY"], queue_size=300)
            await in_thread(lambda: sandbox.admin("POST", "/admin/burst", {"count": 2_000, "symbols": ["SPY"]}))
            await until(lambda: bars.health.received >= 2_000)
            received = bars.health.received
            assert bars.items.qsize() == 300  # never past the bound, however much arrives
            assert bars.health.dropped == received - 300
            record = bars.health_record()
            assert record["dropped_bars"] == received - 300 and record["queue_depth"] == 300
            # The oldest bars were kept, in order: what was dropped is the newest.
            kept = [bars.items.get_nowait() for _ in range(300)]
            assert [b.timestamp for b in kept] == sorted(b.timestamp for b in kept)

    with caplog.at_level(logging.WARNING, logger="alpaca_cli"):
        run(scenario())
    warnings = [r for r in caplog.records if "queue full" in r.getMessage()]
    assert 1 <= len(warnings) <= 2  # rate-limited: not one line per dropped bar


def test_trade_updates_lose_nothing_while_bars_overflow(sandbox: Any) -> None:
    async def scenario() -> None:
        await no_data_connections(sandbox)
        await no_trading_connections(sandbox)
        async with Broker(connection(sandbox)) as broker:
            trades = await broker.trade_updates_connect()
            bars = await broker.market_data_connect(["TSLA"], queue_size=100)
            requests = [market_order("TSLA") for _ in range(60)]
            burst = in_thread(lambda: sandbox.admin("POST", "/admin/burst", {"count": 3_000, "symbols": ["TSLA"]}))
            await asyncio.gather(burst, *(broker.submit_order(r) for r in requests))
            # Nobody reads either queue meanwhile: bars overflow, trade updates must all be kept.
            mine = {r.client_order_id for r in requests}
            await until(lambda: trades.updates.qsize() >= 2 * len(requests) and bars.health.received >= 3_000)
            updates = [trades.updates.get_nowait() for _ in range(trades.updates.qsize())]
            fills = {u.order.client_order_id for u in updates if u.event == "fill"}
            news = {u.order.client_order_id for u in updates if u.event == "new"}
            assert mine <= fills and mine <= news
            assert bars.health.dropped > 0

    run(scenario())


# ------------------------------------------------------------------- lifecycle


def test_dropped_connections_reconnect_and_resubscribe(sandbox: Any) -> None:
    async def scenario() -> None:
        await no_data_connections(sandbox)
        await no_trading_connections(sandbox)
        async with Broker(connection(sandbox)) as broker:
            bars = await broker.market_data_connect(["AAPL"])
            trades = await broker.trade_updates_connect()
            await next_event(bars, "connected")
            await next_event(trades, "connected")

            await in_thread(lambda: sandbox.admin("POST", "/admin/drop", {"stream": "data"}))
            lost = await next_event(bars, "disconnected")
            assert lost.reason == "connection lost (no close frame)"
            back = await next_event(bars, "connected")
            assert back.reconnects == 1 and bars.health.reconnects == 1 and bars.connected.is_set()
            assert bars.health_record()["last_reconnect_at"] == back.at
            while not bars.items.empty():
                bars.items.get_nowait()
            fresh = await asyncio.wait_for(bars.items.get(), 5)  # re-subscribed: bars flow again
            assert fresh.symbol == "AAPL"

            await in_thread(lambda: sandbox.admin("POST", "/admin/drop", {"stream": "trading"}))
            await next_event(trades, "disconnected")
            again = await next_event(trades, "connected")
            assert again.reconnects == 1
            request = market_order("AAPL")
            await broker.submit_order(request)
            while True:
                update = await asyncio.wait_for(trades.updates.get(), 5)
                if update.order.client_order_id == request.client_order_id and update.event == "fill":
                    break

    run(scenario())


def test_a_mute_data_socket_is_noticed_and_replaced(sandbox: Any) -> None:
    async def scenario() -> None:
        await no_data_connections(sandbox)
        async with Broker(connection(sandbox)) as broker:
            bars = await broker.market_data_connect(["AAPL"], stale_after=1.5)
            await next_event(bars, "connected")
            sandbox.set_faults(mute_data=True)
            stale = await next_event(bars, "stale", timeout=5)
            assert stale.reason and "no data" in stale.reason
            lost = await next_event(bars, "disconnected")
            assert lost.reason and lost.reason.startswith("stale")
            sandbox.set_faults(mute_data=False)
            back = await next_event(bars, "connected", timeout=15)
            assert back.reconnects >= 1 and bars.health.stale_reconnects >= 1
            assert bars.health_record()["stale_reconnects"] >= 1

    run(scenario())


def test_stop_returns_within_the_timeout_when_the_sdk_thread_is_stuck(
    sandbox: Any, caplog: pytest.LogCaptureFixture
) -> None:
    release = threading.Event()

    async def scenario() -> float:
        await no_data_connections(sandbox)
        handle = MarketDataStream(connection(sandbox), ["AAPL"], join_timeout=1.0)
        await handle.connect()
        assert handle.sdk_loop is not None
        handle.sdk_loop.call_soon_threadsafe(release.wait)  # the SDK's loop now hangs in a callback
        started = time.monotonic()
        await handle.stop()
        return time.monotonic() - started

    try:
        with caplog.at_level(logging.WARNING, logger="alpaca_cli"):
            elapsed = run(scenario())
        assert elapsed < 1.0 + 1.0
        assert any("did not stop" in r.getMessage() for r in caplog.records)
    finally:
        release.set()
    for thread in stream_threads():
        thread.join(5)
    assert not stream_threads()


def test_async_with_stops_the_stream_even_when_the_body_fails(sandbox: Any) -> None:
    async def scenario() -> None:
        await no_data_connections(sandbox)
        with pytest.raises(RuntimeError, match="body failed"):
            async with MarketDataStream(connection(sandbox), ["AAPL"]) as handle:
                assert handle.connected.is_set()
                raise RuntimeError("body failed")
        assert not handle.connected.is_set()

    run(scenario())
    assert not stream_threads()


# ------------------------------------------------------------------- fail fast


def test_refused_keys_fail_fast_on_both_streams(sandbox: Any) -> None:
    async def scenario(kind: str) -> Exception:
        async with Broker(connection(sandbox)) as broker:
            started = time.monotonic()
            with pytest.raises(AuthError) as caught:
                if kind == "bars":
                    await broker.market_data_connect(["AAPL"])
                else:
                    await broker.trade_updates_connect()
            assert time.monotonic() - started < 5
        return caught.value

    run(no_data_connections(sandbox))
    sandbox.set_faults(refuse_auth=True)
    data_error = run(scenario("bars"))
    trading_error = run(scenario("trades"))
    assert "market-data stream" in data_error.line() and "refused" in data_error.line()
    assert "trade-updates stream" in trading_error.line()
    assert not stream_threads()


def test_connection_limit_fails_fast_with_a_hint(sandbox: Any) -> None:
    async def scenario() -> None:
        await no_data_connections(sandbox)
        await no_trading_connections(sandbox)
        async with Broker(connection(sandbox)) as holder:
            await holder.market_data_connect(["AAPL"])
            await holder.trade_updates_connect()
            async with Broker(connection(sandbox)) as second:
                started = time.monotonic()
                with pytest.raises(ConnectionLimitError) as data:
                    await second.market_data_connect(["AAPL"])
                with pytest.raises(ConnectionLimitError) as trading:
                    await second.trade_updates_connect()
                assert time.monotonic() - started < 5
            assert "another process" in (data.value.hint or "")
            assert "another process" in (trading.value.hint or "")
            assert int(data.value.exit_code) == 5

    run(scenario())


def test_a_limit_refusal_soon_after_our_own_connection_ended_is_retried_and_later_final(
    sandbox: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The broker may still count our own socket that just dropped: a connection-limit refusal
    within `LIMIT_GRACE` of the end of our last connection (of an earlier handle of the same
    `Broker`, as the supervisor's reconnections are) is retried; once the grace is over it is exit 5."""
    from alpaca_cli.bridge import streams

    def refused(broker: Broker) -> bool:
        return any("429" in (h.health.last_error or "") for h in broker._streams)

    async def scenario() -> None:
        await no_trading_connections(sandbox)
        async with Broker(connection(sandbox)) as ours, Broker(connection(sandbox)) as theirs:
            first = await ours.trade_updates_connect()
            await first.stop()
            holder = await theirs.trade_updates_connect()  # takes the slot, as our unreaped socket would
            again = asyncio.create_task(ours.trade_updates_connect(connect_timeout=20))
            await until(lambda: refused(ours))
            assert not again.done()  # refused, and retrying
            await holder.stop()
            handle = await again
            assert handle.connected.is_set()

            monkeypatch.setattr(streams, "LIMIT_GRACE", 0.5)
            await handle.stop()
            holder = await theirs.trade_updates_connect()
            started = time.monotonic()
            with pytest.raises(ConnectionLimitError):
                await ours.trade_updates_connect(connect_timeout=20)
            assert time.monotonic() - started < 10  # the first refusal after the grace is final
            await holder.stop()

    run(scenario())


def test_insufficient_subscription_suggests_iex(sandbox: Any) -> None:
    async def scenario() -> None:
        with pytest.raises(AuthError) as caught:
            async with Broker(connection(sandbox)) as broker:
                await broker.market_data_connect(["AAPL"], feed="sip")
        assert caught.value.hint == "use --feed iex"

    sandbox.call(lambda: setattr(sandbox.sandbox, "sip_allowed", False))
    try:
        run(scenario())
    finally:
        sandbox.call(lambda: setattr(sandbox.sandbox, "sip_allowed", True))


def test_nothing_listening_is_unreachable_after_the_connect_timeout() -> None:
    async def scenario() -> None:
        dead = resolve(load_settings(sandbox=True, sandbox_url="http://127.0.0.1:9"))
        async with Broker(dead) as broker:
            with pytest.raises(UnreachableError, match="cannot connect"):
                await broker.market_data_connect(["AAPL"], connect_timeout=1.5)

    run(scenario())
    assert not stream_threads()


def test_updates_heard_before_a_disconnect_reach_the_loop_before_it() -> None:
    """The SDK's thread hands updates over each time its loop looks at its sockets; a disconnect
    noticed before that must not overtake them (the supervisor drains the queue on it)."""
    fill = {
        "event": "fill",
        "timestamp": "2026-11-30T15:00:00Z",
        "order": {
            "id": "o-1",
            "symbol": "AAPL",
            "side": "buy",
            "status": "filled",
            "qty": "1",
            "filled_qty": "1",
            "submitted_at": "2026-11-30T15:00:00Z",
        },
    }

    async def scenario() -> list[tuple[str, Any]]:
        handle = TradeUpdateStream(resolve(load_settings(sandbox=True, sandbox_url="http://127.0.0.1:9")))
        sdk = handle._make_sdk_stream()
        seen: list[tuple[str, Any]] = []
        handle._put_heard = lambda updates: seen.append(("updates", [u.order.id for u in updates]))  # type: ignore[method-assign]
        handle._on_disconnected = lambda at, reason: seen.append(("disconnected", reason))  # type: ignore[method-assign]

        async def sdk_turn() -> None:  # one turn of the SDK's loop: a fill, then the socket ends
            await sdk._trade_updates_handler({"stream": "trade_updates", "data": fill})  # type: ignore[attr-defined]
            handle._sdk_disconnected("connection lost")

        await in_thread(lambda: asyncio.run(sdk_turn()))
        await until(lambda: len(seen) == 2)
        return seen

    assert run(scenario()) == [("updates", ["o-1"]), ("disconnected", "connection lost")]


def test_a_followed_stream_hands_updates_over_at_once_the_queued_first() -> None:
    def update(oid: str) -> TradeUpdate:
        return mapping.trade_update(
            {
                "event": "new",
                "timestamp": "2026-11-30T15:00:00Z",
                "order": {
                    "id": oid,
                    "symbol": "AAPL",
                    "side": "buy",
                    "status": "new",
                    "qty": "1",
                    "submitted_at": "2026-11-30T15:00:00Z",
                },
            }
        )

    async def scenario() -> None:
        handle = TradeUpdateStream(resolve(load_settings(sandbox=True, sandbox_url="http://127.0.0.1:9")))
        taken: list[list[str]] = []
        handle._put_heard([update("o-1"), update("o-2")])  # heard while nobody follows: queued
        assert handle.updates.qsize() == 2
        handle.follow(lambda updates: taken.append([u.order.id for u in updates]))
        assert taken == [["o-1", "o-2"]] and handle.updates.empty()  # the queued ones first, at once
        handle._put_heard([update("o-3")])
        assert taken == [["o-1", "o-2"], ["o-3"]]
        handle.follow(None)
        handle._put_heard([update("o-4")])
        assert taken[-1] == ["o-3"] and handle.updates.get_nowait().order.id == "o-4"
        assert handle.health.received == 4

    run(scenario())


# -------------------------------------------------------------- pure helpers


def _refused(status: int) -> InvalidStatus:
    """An upgrade refused with `status`, as `bridge.websocket.connect` raises it."""
    return InvalidStatus(Response(status, "", Headers()))


def test_trading_refusals_are_classified() -> None:
    assert isinstance(trading_refusal(ValueError("failed to authenticate")), AuthError)
    assert isinstance(trading_refusal(_refused(429)), ConnectionLimitError)
    assert isinstance(trading_refusal(_refused(401)), AuthError)
    limit = ConnectionClosedError(Close(1008, "connection limit exceeded"), None)
    assert isinstance(trading_refusal(limit), ConnectionLimitError)
    assert trading_refusal(ConnectionClosedError(None, None)) is None
    assert trading_refusal(ConnectionRefusedError(111, "Connection refused")) is None
    assert trading_refusal(_refused(503)) is None


@pytest.mark.parametrize(
    ("code", "message", "kind"),
    [
        (402, "auth failed", AuthError),
        (None, "auth failed", AuthError),
        (409, "insufficient subscription", AuthError),
        (406, "connection limit exceeded", ConnectionLimitError),
        (405, "symbol limit exceeded", UsageError),
        (404, "auth timeout", None),
        (407, "slow client", None),
        (500, "internal error", None),
    ],
)
def test_data_refusals_follow_alpacas_codes(code: int | None, message: str, kind: type | None) -> None:
    refusal = data_refusal(code, message)
    assert (type(refusal) if refusal else None) is kind


def test_reasons_are_one_short_line() -> None:
    assert describe(ConnectionClosedError(None, None)) == "connection lost (no close frame)"
    assert describe(ConnectionClosedError(Close(1011, "boom"), None)) == "connection closed (1011 boom)"
    assert describe(_refused(429)) == "HTTP 429 at the WebSocket upgrade"
    assert describe(ConnectionRefusedError(111, "Connection refused")) == "cannot connect: Connection refused"


def test_stream_event_lines_follow_the_contract() -> None:
    at = datetime(2026, 1, 2, 15, 30, tzinfo=UTC)
    line = records.stream(StreamEvent(StreamName.trade_updates, "disconnected", at, 2, reason="connection lost"))
    assert line == {
        "type": "stream",
        "stream": "trade-updates",
        "event": "disconnected",
        "at": at,
        "reconnects": 2,
        "reason": "connection lost",
    }
    failed = records.stream(StreamEvent(StreamName.market_data, "failed", at, error=AuthError("refused")))
    assert failed["error"] == "refused" and failed["exit_code"] == 3


# ------------------------------------------------------------ quotes and trades


def test_quotes_and_trades_share_the_bars_connection_and_overflow_without_blocking_the_loop(sandbox: Any) -> None:
    """Unread quotes fill the queue: the newest are dropped and counted by kind, and the loop stays responsive."""

    async def scenario() -> None:
        await no_data_connections(sandbox)
        async with Broker(connection(sandbox)) as broker:
            data = await broker.market_data_connect(["AAPL", "MSFT"], kinds=("quotes", "trades", "bars"), queue_size=50)
            (described,) = sandbox.admin("GET", "/admin/streams")["data"]  # one socket for all three
            subscribed = described["subscriptions"]
            assert all(sorted(subscribed[channel]) == ["AAPL", "MSFT"] for channel in ("quotes", "trades", "bars"))
            assert sorted(subscribed["updatedBars"]) == ["AAPL", "MSFT"]
            lag = 0.0
            loop = asyncio.get_running_loop()
            while data.health.dropped < 200:  # nobody reads: the queue overflows
                before = loop.time()
                await asyncio.sleep(0.01)
                lag = max(lag, loop.time() - before - 0.01)
            assert lag < 0.25, f"the loop stalled for {lag:.2f} s"
            assert data.items.qsize() == 50
            record = data.health_record()
            assert record["dropped_quotes"] > 0 and record["dropped_trades"] > 0
            assert sum(record[f"dropped_{kind}"] for kind in ("bars", "quotes", "trades")) == data.health.dropped
            assert data.health.received == data.put_count + data.health.dropped
            kept = [data.items.get_nowait() for _ in range(50)]
            assert {type(item).__name__ for item in kept} >= {"Quote", "Trade"}
            quotes = [item for item in kept if type(item).__name__ == "Quote"]
            assert all(q.bid < q.ask and q.symbol in ("AAPL", "MSFT") for q in quotes)
            assert data.marks[0].event == "connected" and data.marks[0].after == 0

    run(scenario())


class _Heard:
    """What `_HandingSelector` needs of a `StreamHandle`: items heard, handed over in batches."""

    def __init__(self, log: list[object]) -> None:
        self._heard: list[int] = []
        self.log = log

    def _hand_over(self) -> None:
        if self._heard:
            self.log.append(self._heard)
            self._heard = []


class _Waits(selectors.DefaultSelector):
    """Below `_HandingSelector` in the probe's MRO: notes each look at the sockets (its timeout)."""

    log: list[object]

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        self.log.append(("select", timeout))
        return super().select(timeout)


class _Probe(_HandingSelector, _Waits):
    def __init__(self, heard: _Heard) -> None:
        super().__init__(heard)  # type: ignore[arg-type]
        self.log = heard.log


def test_the_sdk_loop_hands_over_what_it_heard_each_time_it_looks_at_its_sockets() -> None:
    log: list[object] = []
    heard = _Heard(log)
    loop = asyncio.SelectorEventLoop(_Probe(heard))

    async def scenario() -> None:
        heard._heard += [1, 2]  # two items in one turn of the loop: one batch
        await asyncio.sleep(0)
        heard._heard.append(3)  # then nothing to do but wait
        await asyncio.sleep(0.05)

    try:
        loop.run_until_complete(scenario())
    finally:
        loop.close()
    batches = [entry for entry in log if isinstance(entry, list)]
    assert batches == [[1, 2], [3]]
    after = log[log.index([3]) + 1]  # handed over before the wait, not after it
    assert isinstance(after, tuple) and after[1] is not None and after[1] > 0.01, log
