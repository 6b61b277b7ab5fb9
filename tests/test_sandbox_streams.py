"""The sandbox's WebSockets end to end: the unmodified alpaca-py streams over real sockets.

Uses conftest's module-scoped `sandbox`. One `TradingStream` and one
`StockDataStream` run for the whole module (SDK streams are slow to start and
stop); each test flips faults and watches what the SDK delivers. Raw
`websockets` clients check exact wire messages where the SDK would hide them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import msgpack
import pytest
import websockets
from alpaca.data.live.stock import StockDataStream
from alpaca.trading.client import TradingClient
from alpaca.trading.requests import MarketOrderRequest
from alpaca.trading.stream import TradingStream
from websockets.legacy import client as legacy_client
from websockets.legacy.exceptions import InvalidStatusCode

from alpaca_cli.sandbox import marketdata as md
from alpaca_cli.sandbox import streams as streams_module
from alpaca_cli.sandbox.server import SandboxThread

pytestmark = pytest.mark.timeout(60)

KEY, SECRET = "SANDBOXKEY", "SANDBOXSECRET"


def wait_until(check: Callable[[], Any], timeout: float = 10.0, every: float = 0.02) -> Any:
    """Poll `check` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(every)


class Running:
    """An SDK stream running in its own thread, stopped from this one (never in a handler)."""

    def __init__(self, stream: TradingStream | StockDataStream, kick: Callable[[], Any] | None = None) -> None:
        self.stream = stream
        # Wakes the SDK from its 5 s receive wait once asked to stop (a quiet stream's stop is slow).
        self.kick = kick
        self.thread = threading.Thread(target=stream.run, daemon=True)

    def __enter__(self) -> Running:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self.thread.is_alive():
            # `stop()` needs the SDK's loop, which exists only once `run()` got going.
            wait_until(lambda: self.stream._loop is not None, timeout=5)
            self.stream.stop()
            if self.kick is not None:
                self.kick()
        self.thread.join(8)
        assert not self.thread.is_alive(), "SDK stream did not stop"


class LogWatch(logging.Handler):
    """Collects the SDK's log lines so tests can await what it reports."""

    def __init__(self, *names: str) -> None:
        super().__init__(logging.DEBUG)
        self.lines: queue.Queue[str] = queue.Queue()
        self.loggers = [logging.getLogger(n) for n in names]

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.put(record.getMessage())

    def __enter__(self) -> LogWatch:
        for logger in self.loggers:
            logger.addHandler(self)
            logger.setLevel(logging.INFO)
        return self

    def __exit__(self, *exc: object) -> None:
        for logger in self.loggers:
            logger.removeHandler(self)

    def expect(self, text: str, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"SDK never logged {text!r}") from None
            if text in line:
                return line


@pytest.fixture(autouse=True)
def _sip_back_on(sandbox: SandboxThread) -> Iterator[None]:
    """Faults are reset by conftest; the account's SIP entitlement is this module's own switch."""
    yield
    sandbox.call(lambda: setattr(sandbox.sandbox, "sip_allowed", True))


def ws_url(sandbox: SandboxThread, path: str) -> str:
    return sandbox.url.replace("http://", "ws://") + path


def streams(sandbox: SandboxThread) -> dict[str, Any]:
    return sandbox.admin("GET", "/admin/streams")


def faults(sandbox: SandboxThread, **fields: Any) -> None:
    sandbox.admin("POST", "/admin/faults", fields)


# ---------------------------------------------------------------- trading stream


@pytest.fixture(scope="module")
def trading(sandbox: SandboxThread) -> Iterator[queue.Queue[Any]]:
    updates: queue.Queue[Any] = queue.Queue()

    async def on_update(update: Any) -> None:
        updates.put(update)

    stream = TradingStream(KEY, SECRET, paper=True, url_override=ws_url(sandbox, "/stream"))
    stream.subscribe_trade_updates(on_update)
    with Running(stream, kick=lambda: sandbox.admin("POST", "/admin/drop", {"stream": "trading"})):
        wait_until(lambda: _trading_conn(sandbox) and _trading_conn(sandbox)["streams"] == ["trade_updates"])
        yield updates


@pytest.fixture(scope="module")
def client(sandbox: SandboxThread) -> TradingClient:
    return TradingClient(KEY, SECRET, paper=True, url_override=sandbox.url)


def _trading_conn(sandbox: SandboxThread) -> dict[str, Any] | None:
    conns = streams(sandbox)["trading"]
    return conns[0] if conns else None


def _buy(client: TradingClient, qty: int, symbol: str = "AAPL") -> str:
    order = client.submit_order(MarketOrderRequest(symbol=symbol, qty=qty, side="buy", time_in_force="day"))
    return str(order.id)


def _events_for(updates: queue.Queue[Any], order_id: str, until: str = "fill", timeout: float = 10) -> list[Any]:
    got = []
    deadline = time.monotonic() + timeout
    while True:
        update = updates.get(timeout=max(0.01, deadline - time.monotonic()))
        if str(update.order.id) == order_id:
            got.append(update)
            if update.event == until:
                return got


def _wait_filled(client: TradingClient, order_id: str) -> None:
    wait_until(lambda: client.get_order_by_id(order_id).status == "filled")


def test_trade_updates_reach_the_sdk_with_fill_details(
    sandbox: SandboxThread, trading: queue.Queue[Any], client: TradingClient
) -> None:
    order_id = _buy(client, 250)
    events = _events_for(trading, order_id)
    assert [e.event for e in events] == ["new", "partial_fill", "partial_fill", "fill"]
    fills = events[1:]
    assert [e.qty for e in fills] == [100, 100, 50]
    assert [e.position_qty for e in fills] == [100, 200, 250]
    assert all(e.price and e.price > 0 and e.execution_id is not None for e in fills)
    assert len({e.execution_id for e in fills}) == 3
    assert events[-1].order.status == "filled" and float(events[-1].order.filled_qty) == 250
    conn = _trading_conn(sandbox)
    assert conn is not None and conn["authenticated"] and conn["messages_sent"] >= 6


def test_hold_trade_updates_loses_events_but_keeps_the_stream(
    sandbox: SandboxThread, trading: queue.Queue[Any], client: TradingClient
) -> None:
    before = _trading_conn(sandbox)
    faults(sandbox, hold_trade_updates=True)
    held = _buy(client, 10)
    _wait_filled(client, held)
    wait_until(lambda: _trading_conn(sandbox)["messages_discarded"] >= before["messages_discarded"] + 2)
    faults(sandbox, hold_trade_updates=False)
    later = _buy(client, 10)
    events = _events_for(trading, later)
    assert [e.event for e in events] == ["new", "fill"]
    # Nothing of the held order arrived, then or later: the gap is real.
    leftovers = []
    while not trading.empty():
        leftovers.append(trading.get_nowait())
    assert all(str(u.order.id) != held for u in [*events, *leftovers])
    assert _trading_conn(sandbox)["id"] == before["id"]


def test_mute_trading_keeps_the_socket_open_and_silent(
    sandbox: SandboxThread, trading: queue.Queue[Any], client: TradingClient
) -> None:
    before = _trading_conn(sandbox)
    faults(sandbox, mute_trading=True)
    muted = _buy(client, 5)
    _wait_filled(client, muted)
    wait_until(lambda: _trading_conn(sandbox)["messages_discarded"] >= before["messages_discarded"] + 2)
    assert trading.empty()
    now = _trading_conn(sandbox)
    assert now["id"] == before["id"] and now["messages_sent"] == before["messages_sent"]
    faults(sandbox, mute_trading=False)
    assert [e.event for e in _events_for(trading, _buy(client, 5))] == ["new", "fill"]


def test_refuse_trading_answers_503_and_counts_each_refused_upgrade(sandbox: SandboxThread) -> None:
    async def connect() -> None:
        await legacy_client.connect(ws_url(sandbox, "/stream"))

    before = streams(sandbox)["trading_refused"]
    faults(sandbox, refuse_trading=True)
    for _ in range(2):
        with pytest.raises(InvalidStatusCode) as refused:
            asyncio.run(connect())
        assert refused.value.status_code == 503
    assert streams(sandbox)["trading_refused"] == before + 2
    faults(sandbox, refuse_trading=False)


def test_second_trading_connection_is_refused_with_http_429(sandbox: SandboxThread, trading: queue.Queue[Any]) -> None:
    async def connect() -> None:
        # The same call alpaca-py's TradingStream makes.
        await legacy_client.connect(ws_url(sandbox, "/stream"))

    with pytest.raises(InvalidStatusCode) as refused:
        asyncio.run(connect())
    assert refused.value.status_code == 429

    second = TradingStream(KEY, SECRET, paper=True, url_override=ws_url(sandbox, "/stream"))

    async def ignore(update: Any) -> None:
        pass

    second.subscribe_trade_updates(ignore)
    with LogWatch("alpaca.trading.stream") as log, Running(second):
        log.expect("server rejected WebSocket connection: HTTP 429")
    assert len(streams(sandbox)["trading"]) == 1


def test_drop_trading_then_refused_auth_then_recovery(
    sandbox: SandboxThread, trading: queue.Queue[Any], client: TradingClient
) -> None:
    first = _trading_conn(sandbox)
    with LogWatch("alpaca.trading.stream") as log:
        faults(sandbox, refuse_auth=True)
        assert sandbox.admin("POST", "/admin/drop", {"stream": "trading"})["dropped"] == 1
        log.expect("trading stream websocket error")
        log.expect("failed to authenticate")
        faults(sandbox, refuse_auth=False)
    conn = wait_until(lambda: (c := _trading_conn(sandbox)) and c["streams"] == ["trade_updates"] and c)
    assert conn["id"] != first["id"]
    assert [e.event for e in _events_for(trading, _buy(client, 3))] == ["new", "fill"]


def test_raw_trading_wire_messages_and_the_one_connection_rule() -> None:
    """Exact frames, on a sandbox of its own so no SDK connection holds the slot."""

    def auth(secret: str) -> str:
        return json.dumps({"action": "authenticate", "data": {"key_id": KEY, "secret_key": secret}})

    async def scenario(url: str) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        async with websockets.connect(url) as ws:
            await ws.send(auth("bad"))
            seen["refused"] = await ws.recv()
            with pytest.raises(websockets.ConnectionClosed):
                await ws.recv()
        # Two upgrades before either authenticates: the second to authenticate loses.
        async with websockets.connect(url) as first, websockets.connect(url) as second:
            await first.send(auth(SECRET))
            seen["authorized"] = await first.recv()
            await first.send(json.dumps({"action": "listen", "data": {"streams": ["trade_updates"]}}))
            seen["listening"] = await first.recv()
            await second.send(auth(SECRET))
            with pytest.raises(websockets.ConnectionClosed) as lost:
                await second.recv()
            seen["race_close"] = (lost.value.rcvd.code, lost.value.rcvd.reason)
            with pytest.raises(websockets.InvalidStatus) as refused:
                await websockets.connect(url)
            seen["third"] = refused.value.response.status_code, json.loads(refused.value.response.body)
        return seen

    with SandboxThread(port=0) as own:
        seen = asyncio.run(scenario(ws_url(own, "/stream")))
    assert isinstance(seen["refused"], bytes), "paper-api answers in binary frames"
    assert json.loads(seen["refused"]) == {
        "stream": "authorization",
        "data": {"action": "authenticate", "status": "unauthorized", "message": "access key verification failed"},
    }
    assert json.loads(seen["authorized"]) == {
        "stream": "authorization",
        "data": {"action": "authenticate", "status": "authorized"},
    }
    assert json.loads(seen["listening"]) == {"stream": "listening", "data": {"streams": ["trade_updates"]}}
    assert seen["race_close"] == (1008, "connection limit exceeded")
    assert seen["third"] == (429, {"code": 42910000, "message": "connection limit exceeded"})


# ------------------------------------------------------------- market-data stream


@pytest.fixture(scope="module")
def data(sandbox: SandboxThread) -> Iterator[queue.Queue[Any]]:
    received: queue.Queue[Any] = queue.Queue()

    async def on_any(item: Any) -> None:
        received.put(item)

    stream = StockDataStream(KEY, SECRET, url_override=ws_url(sandbox, "/v2/iex"))
    stream.subscribe_bars(on_any, "AAPL", "MSFT")
    stream.subscribe_trades(on_any, "SPY")
    stream.subscribe_quotes(on_any, "SPY")
    with Running(stream):
        wait_until(lambda: _data_conn(sandbox) and _data_conn(sandbox)["subscriptions"]["bars"] == ["AAPL", "MSFT"])
        yield received


def _data_conn(sandbox: SandboxThread, feed: str = "iex") -> dict[str, Any] | None:
    conns = [c for c in streams(sandbox)["data"] if c["feed"] == feed]
    return conns[0] if conns else None


def _drain(q: queue.Queue[Any]) -> list[Any]:
    items = []
    while not q.empty():
        items.append(q.get_nowait())
    return items


def _take(q: queue.Queue[Any], kind: str, n: int, timeout: float = 10.0) -> list[Any]:
    """The next `n` items of `kind` ("bar", "trade", "quote"), skipping the others."""
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < n:
        item = q.get(timeout=max(0.01, deadline - time.monotonic()))
        if type(item).__name__.lower() == kind:
            got.append(item)
    return got


def test_bars_trades_and_quotes_reach_the_sdk(sandbox: SandboxThread, data: queue.Queue[Any]) -> None:
    _drain(data)
    bars = _take(data, "bar", 6)
    by_symbol: dict[str, list[Any]] = {}
    for bar in bars:
        by_symbol.setdefault(bar.symbol, []).append(bar)
        assert bar.low <= min(bar.open, bar.close) <= max(bar.open, bar.close) <= bar.high
        assert bar.timestamp.tzinfo is not None
        micros = round(bar.timestamp.timestamp() * 1e6)
        assert micros % round(sandbox.sandbox.bar_interval * 1e6) == 0, "bars start on interval boundaries"
        assert bar.trade_count is not None and bar.vwap is not None
    assert set(by_symbol) == {"AAPL", "MSFT"}
    for series in by_symbol.values():
        times = [b.timestamp for b in series]
        assert times == sorted(times) and len(set(times)) == len(times)
    (trade,) = _take(data, "trade", 1)
    (quote,) = _take(data, "quote", 1)
    assert trade.symbol == quote.symbol == "SPY" and trade.price > 0 and trade.size > 0
    assert quote.bid_price < quote.ask_price


def test_burst_of_ten_thousand_bars(sandbox: SandboxThread, data: queue.Queue[Any]) -> None:
    _drain(data)
    frames_before = _data_conn(sandbox)["frames_sent"]
    started = time.perf_counter()
    reply = sandbox.admin("POST", "/admin/burst", {"count": 10_000, "symbols": ["AAPL", "MSFT"]})
    assert reply == {"bars": 10_000, "delivered": 10_000}
    step = round(sandbox.sandbox.bar_interval * 1e6)
    burst = 0
    deadline = time.monotonic() + 30
    while burst < 10_000:
        item = data.get(timeout=max(0.01, deadline - time.monotonic()))
        # Burst bars sit between interval boundaries; regular bars start on them.
        if type(item).__name__ == "Bar" and round(item.timestamp.timestamp() * 1e6) % step:
            burst += 1
    elapsed = time.perf_counter() - started
    assert elapsed < 20, f"10,000 bars took {elapsed:.1f}s"
    # Batched: far fewer frames than bars, each frame under alpaca-py's 1 MiB limit (else 1009).
    assert _data_conn(sandbox)["frames_sent"] - frames_before < 200
    print(f"\n10,000-bar burst delivered to the SDK in {elapsed:.2f}s")


def test_mute_data_keeps_the_socket_open_and_silent(sandbox: SandboxThread, data: queue.Queue[Any]) -> None:
    before = _data_conn(sandbox)
    faults(sandbox, mute_data=True)
    wait_until(lambda: _data_conn(sandbox)["messages_discarded"] >= before["messages_discarded"] + 3)
    _drain(data)  # whatever was already on the wire when the mute began
    silent_from = _data_conn(sandbox)
    wait_until(lambda: _data_conn(sandbox)["messages_discarded"] >= silent_from["messages_discarded"] + 50)
    assert data.empty()
    during = _data_conn(sandbox)
    assert during["id"] == before["id"] and during["messages_sent"] == silent_from["messages_sent"]
    faults(sandbox, mute_data=False)
    _take(data, "bar", 2)
    assert _data_conn(sandbox)["id"] == before["id"]


def test_drop_data_now_and_every_the_sdk_resubscribes(sandbox: SandboxThread, data: queue.Queue[Any]) -> None:
    first = _data_conn(sandbox)
    assert sandbox.admin("POST", "/admin/drop", {"stream": "data"})["dropped"] == 1
    again = wait_until(
        lambda: (c := _data_conn(sandbox)) and c["id"] != first["id"] and c["subscriptions"]["bars"] and c
    )
    assert again["subscriptions"] == first["subscriptions"]
    _drain(data)
    _take(data, "bar", 2)
    faults(sandbox, drop_data_every=0.3)
    ids = {again["id"]}

    def two_more_connections() -> bool:
        conn = _data_conn(sandbox)
        if conn:
            ids.add(conn["id"])
        return len(ids) >= 3

    wait_until(two_more_connections, timeout=20)
    faults(sandbox, drop_data_every=None)
    wait_until(lambda: (c := _data_conn(sandbox)) and c["subscriptions"]["bars"], timeout=20)
    _drain(data)
    _take(data, "bar", 2, timeout=20)


def test_second_data_connection_gets_406_and_the_sdk_retries(sandbox: SandboxThread, data: queue.Queue[Any]) -> None:
    async def hello() -> Any:
        async with websockets.connect(
            ws_url(sandbox, "/v2/iex"), additional_headers={"Content-Type": "application/msgpack"}
        ) as ws:
            return msgpack.unpackb(await ws.recv())

    assert asyncio.run(hello()) == [{"T": "error", "code": 406, "msg": "connection limit exceeded"}]

    second = StockDataStream(KEY, SECRET, url_override=ws_url(sandbox, "/v2/iex"))

    async def ignore(item: Any) -> None:
        pass

    second.subscribe_bars(ignore, "AAPL")
    with LogWatch("alpaca.data.live.websocket") as log, Running(second):
        log.expect("connected message not received")
    assert len([c for c in streams(sandbox)["data"] if c["feed"] == "iex"]) == 1


def test_sip_without_subscription_ends_the_sdk_stream(sandbox: SandboxThread) -> None:
    sandbox.call(lambda: setattr(sandbox.sandbox, "sip_allowed", False))
    stream = StockDataStream(KEY, SECRET, url_override=ws_url(sandbox, "/v2/sip"))

    async def ignore(item: Any) -> None:
        pass

    stream.subscribe_bars(ignore, "AAPL")
    with LogWatch("alpaca.data.live.websocket") as log:
        thread = threading.Thread(target=stream.run, daemon=True)
        thread.start()
        log.expect("insufficient subscription")
        thread.join(8)  # alpaca-py gives up on 409 by itself
    assert not thread.is_alive()


def _raw_data(sandbox: SandboxThread, script: Callable[[Any], Any], feed: str = "sip", binary: bool = True) -> Any:
    headers = {"Content-Type": "application/msgpack"} if binary else {}

    async def run() -> Any:
        async with websockets.connect(ws_url(sandbox, f"/v2/{feed}"), additional_headers=headers) as ws:
            return await script(ws)

    return asyncio.run(run())


def test_raw_data_refused_auth_and_json_codec(sandbox: SandboxThread) -> None:
    async def bad_auth(ws: Any) -> list[Any]:
        hello = msgpack.unpackb(await ws.recv())
        await ws.send(msgpack.packb({"action": "auth", "key": KEY, "secret": SECRET}))
        refused = msgpack.unpackb(await ws.recv())
        with pytest.raises(websockets.ConnectionClosed):
            await ws.recv()
        return [hello, refused]

    faults(sandbox, refuse_auth=True)
    assert _raw_data(sandbox, bad_auth) == [
        [{"T": "success", "msg": "connected"}],
        [{"T": "error", "code": 402, "msg": "auth failed"}],
    ]
    faults(sandbox, refuse_auth=False)

    async def json_session(ws: Any) -> list[Any]:
        replies = [json.loads(await ws.recv())]
        await ws.send(json.dumps({"action": "subscribe", "bars": ["AAPL"]}))
        replies.append(json.loads(await ws.recv()))
        await ws.send(json.dumps({"action": "auth", "key": KEY, "secret": SECRET}))
        replies.append(json.loads(await ws.recv()))
        await ws.send(json.dumps({"action": "subscribe", "bars": ["IBM"]}))
        replies.append(json.loads(await ws.recv()))
        bar = json.loads(await ws.recv())
        replies.append(bar)
        return replies

    hello, early, authed, ack, bars = _raw_data(sandbox, json_session, binary=False)
    assert hello == [md.CONNECTED] and early == [md.error(401)] and authed == [md.AUTHENTICATED]
    assert ack[0]["bars"] == ["IBM"]
    assert bars[0]["T"] == "b" and bars[0]["S"] == "IBM" and bars[0]["t"].endswith("Z")


def test_auth_timeout_closes_with_404(sandbox: SandboxThread, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(md, "AUTH_TIMEOUT", 0.2)

    async def idle(ws: Any) -> list[Any]:
        got = [msgpack.unpackb(await ws.recv()), msgpack.unpackb(await ws.recv())]
        with pytest.raises(websockets.ConnectionClosed):
            await ws.recv()
        return got

    assert _raw_data(sandbox, idle) == [[md.CONNECTED], [{"T": "error", "code": 404, "msg": "auth timeout"}]]


def test_a_client_that_stops_reading_is_cut_with_407(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(streams_module, "SLOW_CLIENT_LIMIT", 50)

    async def scenario(own: SandboxThread) -> list[Any]:
        url = ws_url(own, "/v2/iex")
        async with websockets.connect(url, additional_headers={"Content-Type": "application/msgpack"}) as ws:
            got = [msgpack.unpackb(await ws.recv())]
            await ws.send(msgpack.packb({"action": "auth", "key": KEY, "secret": SECRET}))
            got.append(msgpack.unpackb(await ws.recv()))
            await ws.send(msgpack.packb({"action": "subscribe", "bars": ["AAPL"]}))
            got.append(msgpack.unpackb(await ws.recv())[0]["T"])
            # More than the client may have queued, all at once: it counts as too slow.
            reply = await asyncio.to_thread(own.admin, "POST", "/admin/burst", {"count": 500, "symbols": ["AAPL"]})
            got.append(reply)
            frames = []
            with pytest.raises(websockets.ConnectionClosed):
                while True:
                    frames.append(msgpack.unpackb(await ws.recv()))
            got.append([m for f in frames for m in f if m["T"] != "b"])
        return got

    with SandboxThread(port=0, bar_interval=60.0) as own:
        hello, authed, ack, burst, tail = asyncio.run(scenario(own))
        wait_until(lambda: own.admin("GET", "/admin/streams")["data"] == [])
    assert (hello, authed, ack) == ([md.CONNECTED], [md.AUTHENTICATED], "subscription")
    assert burst["bars"] == 500
    assert tail == [{"T": "error", "code": 407, "msg": "slow client"}]


def test_admin_routes_validate(sandbox: SandboxThread) -> None:
    import urllib.error

    with pytest.raises(urllib.error.HTTPError) as bad:
        sandbox.admin("POST", "/admin/drop", {"stream": "both"})
    assert bad.value.code == 400
    with pytest.raises(urllib.error.HTTPError) as bad:
        sandbox.admin("POST", "/admin/burst", {"count": -1})
    assert bad.value.code == 400
    snapshot = streams(sandbox)
    assert set(snapshot) >= {"trading", "data", "bars_sent", "trade_updates_discarded"}
