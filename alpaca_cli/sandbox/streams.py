"""The sandbox's WebSockets: the trading stream and the market-data streams.

`setup(app, sandbox)` adds to the sandbox's aiohttp application:

- `GET /stream`: Alpaca's trading stream (`trade_updates`), one per account.
- `GET /v2/iex`, `GET /v2/sip`: Alpaca's stock market-data streams, one per feed.
- `POST /admin/drop {"stream": "trading"|"data"}`: cut those connections now.
- `GET /admin/streams`: open connections, their subscriptions, messages sent.
- `POST /admin/burst {"count": N, "symbols"?: [...]}`: send N bars at once.

The protocol rules live in `tradestream` and `marketdata` (pure, tested
without sockets); this module moves their messages over sockets, applies the
stream faults of `sandbox.faults` (read at every use, so they can change while
connections are open), and turns the engine's callbacks into messages.

The engine calls its listeners synchronously, possibly from another thread;
every callback hops onto the server's event loop before touching a socket.
Each connection has an outbox drained by its own writer task, so a slow reader
never blocks the engine, and everything queued when the writer wakes goes out
together: market data in as few array frames as fit under 1 MiB, as Alpaca
batches them.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from aiohttp import WSMsgType, web

from alpaca_cli.sandbox import marketdata as md
from alpaca_cli.sandbox import tradestream as ts
from alpaca_cli.sandbox.datarest import CRYPTO_LOCATIONS
from alpaca_cli.sandbox.model import Bar

log = logging.getLogger(__name__)

# Messages a connection may have queued before it counts as a slow client (407).
SLOW_CLIENT_LIMIT = 250_000
# At most this many finished intervals are sent at once (a clock moved far ahead sends the last ones).
_MAX_CATCH_UP = 1000
# How often the drop-every timers look at the faults.
_DROP_POLL = 0.05
_HUB_KEY = web.AppKey("alpaca_cli.stream_hub", object)


@dataclass(eq=False)
class _Conn:
    """One open WebSocket and what the writer task still has to send on it."""

    kind: str  # "trading" | "data"
    ws: web.WebSocketResponse
    request: web.Request
    feed: str | None = None
    id: int = 0
    connected_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    # Entries: ("frame", bytes|str, count) sent as is, or ("data", message) batched.
    outbox: deque[tuple[Any, ...]] = field(default_factory=deque)
    queued: int = 0
    sent: int = 0
    frames: int = 0
    dropped: int = 0
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    writer: asyncio.Task[None] | None = None
    closing: bool = False
    close_code: int = 1000
    close_reason: bytes = b""
    trade: ts.TradeSession | None = None
    data: md.DataSession | None = None
    codec: md.Codec | None = None

    def abort(self) -> None:
        """Cut the TCP connection without a closing handshake, like a network failure."""
        self.closing = True
        transport = self.request.transport
        if transport is not None:
            transport.abort()
        self.wake.set()

    def describe(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "id": self.id,
            "remote": self.request.remote,
            "connected_at": self.connected_at.isoformat().replace("+00:00", "Z"),
            "messages_sent": self.sent,
            "frames_sent": self.frames,
            "messages_discarded": self.dropped,
            "queued": self.queued,
        }
        if self.trade is not None:
            info["authenticated"] = self.trade.authenticated
            info["streams"] = list(self.trade.streams)
        if self.data is not None:
            info["feed"] = self.feed
            info["authenticated"] = self.data.authenticated
            subs = self.data.subscriptions.ack()
            del subs["T"]
            info["subscriptions"] = subs
        return info


class StreamHub:
    """All stream connections of one sandbox, and the engine hooks feeding them."""

    def __init__(self, sandbox: Any) -> None:
        self.sandbox = sandbox
        self.trading: list[_Conn] = []
        self.data: list[_Conn] = []
        self.bursts = md.BurstBars()
        self._trading_owner: _Conn | None = None
        self._ids = itertools.count(1)
        self._trade_ids = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._window: int | None = None  # the recorded bar under way at the last roll
        self.bars_sent = 0
        self.corrections_sent = 0  # updatedBars messages (the `correct_bars_after` fault)
        self.trade_updates_discarded = 0
        self.trading_refused = 0  # upgrades refused by the `refuse_trading` outage

    # ------------------------------------------------------------------ lifecycle

    async def start(self, _app: web.Application) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self.sandbox.broker.listeners.append(self._on_order_event)
        self.sandbox.engine.trade_listeners.append(self._on_print)
        self._tasks = [
            asyncio.create_task(self._bar_clock(), name="sandbox-bar-clock"),
            asyncio.create_task(self._drop_timer(), name="sandbox-drop-timer"),
        ]

    async def stop(self, _app: web.Application) -> None:
        """Stop timers and cut every connection so the server shuts down at once."""
        with contextlib.suppress(ValueError):
            self.sandbox.broker.listeners.remove(self._on_order_event)
        with contextlib.suppress(ValueError):
            self.sandbox.engine.trade_listeners.remove(self._on_print)
        for task in self._tasks:
            task.cancel()
        for conn in [*self.trading, *self.data]:
            conn.abort()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _call_in_loop(self, fn: Callable[..., None], *args: Any) -> None:
        """Run `fn` on the server loop: now if already there, else as soon as it can."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        if threading.get_ident() == self._loop_thread:
            fn(*args)
        else:
            loop.call_soon_threadsafe(fn, *args)

    # ------------------------------------------------------------------- sending

    def _enqueue_frame(self, conn: _Conn, frame: bytes | str, count: int = 1) -> None:
        if conn.closing:
            return
        conn.outbox.append(("frame", frame, count))
        self._queued(conn, count)

    def _enqueue_data(self, conn: _Conn, message: dict[str, Any]) -> None:
        if conn.closing:
            return
        conn.outbox.append(("data", message))
        self._queued(conn, 1)

    def _queued(self, conn: _Conn, count: int) -> None:
        conn.queued += count
        conn.wake.set()
        if conn.queued > SLOW_CLIENT_LIMIT and not conn.closing:
            log.warning("stream connection %s is too slow; disconnecting it", conn.id)
            conn.outbox.clear()
            conn.queued = 0
            if conn.kind == "data" and conn.codec is not None:
                conn.outbox.append(("frame", next(conn.codec.frames([md.error(407)])), 1))
            conn.closing = True

    def _muted(self, conn: _Conn) -> bool:
        faults = self.sandbox.faults
        return faults.mute_trading if conn.kind == "trading" else faults.mute_data

    async def _writer(self, conn: _Conn) -> None:
        """Drain the outbox; whatever is queued at wake-up is sent together."""
        ws = conn.ws
        try:
            while True:
                await conn.wake.wait()
                conn.wake.clear()
                while conn.outbox:
                    entries = list(conn.outbox)
                    conn.outbox.clear()
                    conn.queued = 0
                    await self._send_entries(conn, entries)
                if conn.closing:
                    break
        except (ConnectionError, RuntimeError, asyncio.CancelledError):
            # A cut or closing socket: the handler notices and cleans up.
            pass
        finally:
            if conn.closing and not ws.closed:
                with contextlib.suppress(Exception):
                    await ws.close(code=conn.close_code, message=conn.close_reason)

    async def _send_entries(self, conn: _Conn, entries: list[tuple[Any, ...]]) -> None:
        ws = conn.ws
        if self._muted(conn):
            conn.dropped += sum(e[2] if e[0] == "frame" else 1 for e in entries)
            return
        batch: list[dict[str, Any]] = []

        async def flush() -> None:
            assert conn.codec is not None
            for frame in conn.codec.frames(batch):
                await _send(ws, frame)
                conn.frames += 1
            conn.sent += len(batch)
            batch.clear()

        for entry in entries:
            if entry[0] == "data":
                batch.append(entry[1])
                continue
            if batch:
                await flush()
            await _send(ws, entry[1])
            conn.frames += 1
            conn.sent += entry[2]
        if batch:
            await flush()

    # ------------------------------------------------------------ trading stream

    async def trading_handler(self, request: web.Request) -> web.StreamResponse:
        if self.sandbox.faults.refuse_trading:
            self.trading_refused += 1
            return web.json_response({"code": 50310000, "message": "service unavailable"}, status=503)
        if self._slot_holder() is not None:
            return web.json_response(ts.LIMIT_BODY, status=429)
        ws = web.WebSocketResponse(compress=False, timeout=1.0)
        await ws.prepare(request)
        conn = _Conn("trading", ws, request, id=next(self._ids))
        conn.trade = ts.TradeSession(self.sandbox.key_id, self.sandbox.secret_key)
        conn.writer = asyncio.create_task(self._writer(conn))
        self.trading.append(conn)
        try:
            async for msg in ws:
                if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                    continue
                holder = self._slot_holder()
                outcome = conn.trade.receive(
                    msg.data,
                    refuse_auth=self.sandbox.faults.refuse_auth,
                    slot_taken=holder is not None and holder is not conn,
                )
                if conn.trade.authenticated and self._slot_holder() is None:
                    self._trading_owner = conn
                for reply in outcome.replies:
                    self._enqueue_frame(conn, ts.encode(reply))
                if outcome.limit_exceeded:
                    conn.close_code = ts.CLOSE_LIMIT
                    conn.close_reason = ts.LIMIT_REASON.encode()
                if outcome.close:
                    conn.closing = True
                    conn.wake.set()
                    break
        finally:
            await self._finish(conn)
        return ws

    def _slot_holder(self) -> _Conn | None:
        """The authenticated trading connection that holds the account's one slot, if any."""
        owner = self._trading_owner
        if owner is None or owner.closing or owner.ws.closed:
            return None
        return owner

    def _on_order_event(self, payload: dict[str, Any]) -> None:
        frame = json.dumps(ts.trade_update(payload), separators=(",", ":"))
        self._call_in_loop(self._deliver_trade_update, frame.encode())

    def _deliver_trade_update(self, frame: bytes) -> None:
        for conn in self.trading:
            if conn.trade is None or not conn.trade.listening or conn.closing:
                continue
            if self.sandbox.faults.hold_trade_updates:
                # The gap case: the event is gone for good, as on a real disconnect.
                conn.dropped += 1
                self.trade_updates_discarded += 1
                continue
            self._enqueue_frame(conn, frame)

    # -------------------------------------------------------- market-data stream

    async def data_handler(self, request: web.Request) -> web.StreamResponse:
        feed = request.match_info.get("feed", md.CRYPTO_FEED)
        ws = web.WebSocketResponse(compress=False, timeout=1.0, max_msg_size=md.MAX_FRAME_BYTES)
        await ws.prepare(request)
        binary = "msgpack" in request.headers.get("Content-Type", "")
        conn = _Conn("data", ws, request, feed=feed, id=next(self._ids), codec=md.Codec(binary))
        assert conn.codec is not None
        if any(c.feed == feed and not c.ws.closed and not c.closing for c in self.data):
            # Alpaca allows one connection per feed; the second hears 406 instead of hello.
            if not self.sandbox.faults.mute_data:
                await _send(ws, next(conn.codec.frames([md.error(406)])))
            await ws.close()
            return ws
        conn.data = md.DataSession(
            self.sandbox.key_id,
            self.sandbox.secret_key,
            feed,
            sip_allowed=self.sandbox.sip_allowed,
        )
        conn.writer = asyncio.create_task(self._writer(conn))
        self.data.append(conn)
        self._enqueue_frame(conn, next(conn.codec.frames([md.CONNECTED])))
        deadline = time.monotonic() + md.AUTH_TIMEOUT
        try:
            while not conn.closing:
                timeout = None if conn.data.authenticated else deadline - time.monotonic()
                try:
                    msg = await ws.receive(timeout=timeout)
                except TimeoutError:
                    self._control(conn, md.error(404))
                    conn.closing = True
                    break
                if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
                    break
                if msg.type == WSMsgType.ERROR:
                    break
                if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                    continue
                try:
                    request_msg = conn.codec.decode(msg.data)
                except ValueError:
                    self._control(conn, md.error(400))
                    continue
                reply = conn.data.receive(request_msg, refuse_auth=self.sandbox.faults.refuse_auth)
                for frame in reply.frames:
                    for message in frame:
                        self._control(conn, message)
                if isinstance(request_msg, dict) and request_msg.get("action") in (
                    "subscribe",
                    "unsubscribe",
                ):
                    self._register_symbols(conn)
                if reply.close:
                    conn.closing = True
        finally:
            conn.wake.set()
            await self._finish(conn)
        return ws

    def _control(self, conn: _Conn, message: dict[str, Any]) -> None:
        assert conn.codec is not None
        self._enqueue_frame(conn, next(conn.codec.frames([message])))

    def _register_symbols(self, conn: _Conn) -> None:
        """Make the engine walk every newly subscribed symbol, so it prints and has bars."""
        assert conn.data is not None
        subs = conn.data.subscriptions
        for channel in ("trades", "quotes", "bars", "updatedBars"):
            for symbol in subs.symbols(channel):
                if symbol != "*":
                    self.sandbox.engine.price(symbol)

    def _price(self, symbol: str) -> float:
        return float(self.sandbox.engine.price(symbol))

    def _crypto(self, symbol: str) -> bool:
        """Is `symbol` a crypto pair (for the crypto stream) rather than a stock (for the feeds)?"""
        ticker = self.sandbox.engine.market.tickers.get(symbol)
        return ticker is not None and ticker.crypto

    def _subscribers(self) -> list[_Conn]:
        return [
            c for c in self.data if c.data is not None and c.data.authenticated and not c.closing and not c.ws.closed
        ]

    def _wants(self, conn: _Conn, channel: str, symbol: str) -> bool:
        """Does `conn` subscribe `symbol` on `channel` (a wildcard covers its own asset class only)?"""
        assert conn.data is not None
        return conn.data.subscriptions.wants(channel, symbol) and (conn.feed == md.CRYPTO_FEED) == self._crypto(symbol)

    def _on_print(self, symbol: str, price: Decimal, size: Decimal, when: datetime) -> None:
        self._call_in_loop(self._deliver_print, symbol, float(price), size, when)

    def _deliver_print(self, symbol: str, price: float, size: Decimal, when: datetime) -> None:
        """One print of the walk: a trade message, and a quote straddling it, to whoever subscribes."""
        trade: dict[str, Any] | None = None
        quote: dict[str, Any] | None = None
        crypto = self._crypto(symbol)
        for conn in self._subscribers():
            if self._wants(conn, "quotes", symbol):
                if quote is None:
                    quote = (
                        md.crypto_quote_message(symbol, price, when)
                        if crypto
                        else md.quote_message(symbol, price, when)
                    )
                self._enqueue_data(conn, quote)
            if self._wants(conn, "trades", symbol):
                if trade is None:
                    trade_id = next(self._trade_ids)
                    if crypto:
                        taker = "B" if trade_id % 2 else "S"
                        trade = md.crypto_trade_message(symbol, price, float(size), when, trade_id, taker)
                    else:
                        trade = md.trade_message(symbol, price, int(size), when, trade_id)
                self._enqueue_data(conn, trade)

    def _bar_symbols(self, conn: _Conn | None = None) -> set[str]:
        """The symbols `conn` (or any subscriber) takes bars of, the wildcard expanded to the walking ones."""
        symbols: set[str] = set()
        for sub in [conn] if conn is not None else self._subscribers():
            symbols |= sub.data.subscriptions.symbols("bars")  # type: ignore[union-attr]
        if "*" in symbols:
            symbols.discard("*")
            symbols |= set(self.sandbox.engine.symbols())
        return symbols

    def roll(self, now: datetime) -> int:
        """Send the bars of every interval that ended since the last roll; returns how many went out.

        The bars are the engine's recorded ones (the series the bars API serves);
        an interval without prints has no bar, and a stock has none outside the session.
        """
        index = self.sandbox.engine.market.bar_index(now)
        if self._window is None or index < self._window:  # the first roll, or the clock moved back
            self._window = index
            return 0
        first = max(self._window, index - _MAX_CATCH_UP)
        self._window = index
        return sum(self._send_bars(past) for past in range(first, index))

    def _send_bars(self, index: int) -> int:
        engine = self.sandbox.engine
        stocks_trade = engine.is_open_at(engine.market.bar_start(index))
        made: dict[str, Bar | None] = {}
        delivered = 0
        for conn in self._subscribers():
            for symbol in sorted(self._bar_symbols(conn)):
                if not self._wants(conn, "bars", symbol) or not (stocks_trade or self._crypto(symbol)):
                    continue
                if symbol not in made:
                    made[symbol] = engine.recorded_bar(symbol, index)
                bar = made[symbol]
                if bar is not None:
                    self._enqueue_data(conn, md.bar_of(symbol, bar))
                    self.bursts.sent(symbol, bar.t)
                    delivered += 1
        self.bars_sent += delivered
        corrected = [s for s, bar in made.items() if bar is not None]
        delay = self.sandbox.faults.correct_bars_after
        if delay is not None and corrected and self._loop is not None:
            self._loop.call_later(delay, self._correct, index, corrected)
        return delivered

    def _correct(self, index: int, symbols: list[str]) -> None:
        """The `correct_bars_after` fault: a late print lands in bar `index`; `updatedBars` says so."""
        for symbol in symbols:
            bar = self.sandbox.engine.report_late(symbol, index)
            if bar is None:
                continue
            message = md.bar_of(symbol, bar, "u")
            for conn in self._subscribers():
                if self._wants(conn, "updatedBars", symbol):
                    self._enqueue_data(conn, message)
                    self.corrections_sent += 1

    def _deliver_bars(self, bars: list[dict[str, Any]]) -> int:
        delivered = 0
        for conn in self._subscribers():
            mine = [b for b in bars if self._wants(conn, "bars", b["S"])]
            for bar in mine:
                self._enqueue_data(conn, bar)
            delivered += len(mine)
        self.bars_sent += delivered
        return delivered

    async def _bar_clock(self) -> None:
        """Send bars at every bar-interval boundary of the sandbox's clock."""
        while True:
            interval = self.sandbox.bar_interval
            now = self.sandbox.now()
            self.roll(now)
            boundary = md.interval_start(now, interval) + timedelta(seconds=interval)
            await asyncio.sleep(max(0.0, (boundary - self.sandbox.now()).total_seconds()))

    def burst(self, count: int, symbols: list[str] | None) -> dict[str, int]:
        """Send `count` synthetic bars now to the data subscribers (see `BurstBars.burst`)."""
        now = self.sandbox.now()
        self.roll(now)  # send a finished interval first so burst times stay ordered
        if not symbols:
            symbols = sorted(self._bar_symbols())
        bars = self.bursts.burst(symbols, count, self.sandbox.bar_interval, now, self._price)
        return {"bars": len(bars), "delivered": self._deliver_bars(bars)}

    # -------------------------------------------------------------------- faults

    async def _drop_timer(self) -> None:
        """Apply `drop_trading_every` / `drop_data_every`, re-reading them as they change."""
        due: dict[str, float | None] = {"trading": None, "data": None}
        while True:
            await asyncio.sleep(_DROP_POLL)
            faults = self.sandbox.faults
            now = time.monotonic()
            for kind, every in (
                ("trading", faults.drop_trading_every),
                ("data", faults.drop_data_every),
            ):
                if not every:
                    due[kind] = None
                    continue
                next_due = due[kind]
                if next_due is None or next_due > now + every:
                    due[kind] = now + every
                elif now >= next_due:
                    self.drop(kind)
                    due[kind] = now + every

    def drop(self, kind: str) -> int:
        """Cut every connection of `kind` ("trading" or "data") abruptly."""
        conns = self.trading if kind == "trading" else self.data
        victims = [c for c in conns if not c.ws.closed]
        for conn in victims:
            conn.abort()
        return len(victims)

    async def _finish(self, conn: _Conn) -> None:
        conns = self.trading if conn.kind == "trading" else self.data
        if conn in conns:
            conns.remove(conn)
        if self._trading_owner is conn:
            self._trading_owner = None
        conn.closing = True
        conn.wake.set()
        if conn.writer is not None:
            try:
                await asyncio.wait_for(conn.writer, timeout=2.0)
            except (TimeoutError, asyncio.CancelledError):
                conn.writer.cancel()
        if not conn.ws.closed:
            with contextlib.suppress(Exception):
                await conn.ws.close()

    # --------------------------------------------------------------------- admin

    def snapshot(self) -> dict[str, Any]:
        return {
            "trading": [c.describe() for c in self.trading],
            "data": [c.describe() for c in self.data],
            "bars_sent": self.bars_sent,
            "corrections_sent": self.corrections_sent,
            "trade_updates_discarded": self.trade_updates_discarded,
            "trading_refused": self.trading_refused,
        }


async def _send(ws: web.WebSocketResponse, frame: bytes | str) -> None:
    if isinstance(frame, bytes):
        await ws.send_bytes(frame)
    else:
        await ws.send_str(frame)


def setup(app: web.Application, sandbox: Any) -> StreamHub:
    """Add the stream routes and background tasks of `sandbox` to `app`."""
    hub = StreamHub(sandbox)
    app[_HUB_KEY] = hub
    app.router.add_get("/stream", hub.trading_handler)
    app.router.add_get("/stream/", hub.trading_handler)  # where alpaca-trade-api connects
    app.router.add_get("/v2/{feed:iex|sip}", hub.data_handler)
    app.router.add_get("/v1beta3/crypto/{loc:" + "|".join(CRYPTO_LOCATIONS) + "}", hub.data_handler)

    async def admin_drop(request: web.Request) -> web.Response:
        body = await _json_body(request)
        kind = body.get("stream")
        if kind not in ("trading", "data"):
            return web.json_response({"code": 40010000, "message": 'stream must be "trading" or "data"'}, status=400)
        return web.json_response({"stream": kind, "dropped": hub.drop(kind)})

    async def admin_streams(_request: web.Request) -> web.Response:
        return web.json_response(hub.snapshot())

    async def admin_burst(request: web.Request) -> web.Response:
        body = await _json_body(request)
        count = body.get("count", 1000)
        symbols = body.get("symbols")
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            return web.json_response({"code": 40010000, "message": "count must be a non-negative integer"}, status=400)
        if symbols is not None and (
            not isinstance(symbols, list) or not all(isinstance(s, str) and s for s in symbols)
        ):
            return web.json_response({"code": 40010000, "message": "symbols must be a list of symbols"}, status=400)
        return web.json_response(hub.burst(count, symbols))

    app.router.add_post("/admin/drop", admin_drop)
    app.router.add_get("/admin/streams", admin_streams)
    app.router.add_post("/admin/burst", admin_burst)
    app.on_startup.append(hub.start)
    app.on_shutdown.append(hub.stop)
    return hub


async def _json_body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        body = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(
            text=json.dumps({"code": 40010000, "message": "body must be JSON"}),
            content_type="application/json",
        ) from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(
            text=json.dumps({"code": 40010000, "message": "body must be a JSON object"}),
            content_type="application/json",
        )
    return body
