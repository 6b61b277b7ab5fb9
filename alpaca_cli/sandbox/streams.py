"""The sandbox's WebSockets: the trading stream and the market-data streams.

`setup(app, sandbox)` adds to the sandbox's aiohttp application:

- `GET /stream`: Alpaca's trading stream (`trade_updates`), one per account.
- `GET /v2/iex`, `GET /v2/sip`: Alpaca's stock market-data streams, one per feed.
- `GET /v1beta3/crypto/{loc}`: Alpaca's crypto market-data stream.
- `POST /admin/drop {"stream": "trading"|"data"}`: cut those connections now.
- `GET /admin/streams`: open connections, their subscriptions, messages sent.
- `POST /admin/burst {"count": N, "symbols"?: [...]}`: send N bars at once.

The protocol rules live in `tradestream` and `marketdata` (pure, tested
without sockets) and what market data goes where in `datafeed`; this module
moves their messages over sockets, applies the stream faults of
`sandbox.faults` (read at every use, so they can change while connections are
open), and hands the engine's callbacks to the loop.

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
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from aiohttp import WSMsgType, web

from alpaca_cli.sandbox import marketdata as md
from alpaca_cli.sandbox import tradestream as ts
from alpaca_cli.sandbox.datafeed import DataFeed
from alpaca_cli.sandbox.datarest import CRYPTO_LOCATIONS
from alpaca_cli.sandbox.wsconn import Conn

log = logging.getLogger(__name__)

# Messages a connection may have queued before it counts as a slow client (407).
SLOW_CLIENT_LIMIT = 250_000
# How often the drop-every timers look at the faults.
_DROP_POLL = 0.05
_HUB_KEY = web.AppKey("alpaca_cli.stream_hub", object)


class StreamHub:
    """All stream connections of one sandbox, and the engine hooks feeding them."""

    def __init__(self, sandbox: Any) -> None:
        self.sandbox = sandbox
        self.trading: list[Conn] = []
        self.data: list[Conn] = []
        self._trading_owner: Conn | None = None
        self._ids = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.feed = DataFeed(sandbox, self._subscribers, self._enqueue_data)
        self.trade_updates_discarded = 0
        self.trading_refused = 0  # upgrades refused by the `refuse_trading` outage

    # ------------------------------------------------------------------ lifecycle

    async def start(self, _app: web.Application) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self.sandbox.broker.listeners.append(self._on_order_event)
        self.sandbox.engine.trade_listeners.append(self._on_print)
        self._tasks = [
            asyncio.create_task(self.feed.bar_clock(), name="sandbox-bar-clock"),
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

    def _enqueue_frame(self, conn: Conn, frame: bytes | str, count: int = 1) -> None:
        if conn.closing:
            return
        conn.outbox.append(("frame", frame, count))
        self._queued(conn, count)

    def _enqueue_data(self, conn: Conn, message: dict[str, Any]) -> None:
        if conn.closing:
            return
        conn.outbox.append(("data", message))
        self._queued(conn, 1)

    def _queued(self, conn: Conn, count: int) -> None:
        conn.queued += count
        conn.wake.set()
        if conn.queued > SLOW_CLIENT_LIMIT and not conn.closing:
            log.warning("stream connection %s is too slow; disconnecting it", conn.id)
            conn.outbox.clear()
            conn.queued = 0
            if conn.kind == "data" and conn.codec is not None:
                conn.outbox.append(("frame", next(conn.codec.frames([md.error(407)])), 1))
            conn.closing = True

    def _muted(self, conn: Conn) -> bool:
        faults = self.sandbox.faults
        return faults.mute_trading if conn.kind == "trading" else faults.mute_data

    async def _writer(self, conn: Conn) -> None:
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

    async def _send_entries(self, conn: Conn, entries: list[tuple[Any, ...]]) -> None:
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
        conn = Conn("trading", ws, request, id=next(self._ids))
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

    def _slot_holder(self) -> Conn | None:
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
        conn = Conn("data", ws, request, feed=feed, id=next(self._ids), codec=md.Codec(binary))
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
                    self.feed.register_symbols(conn)
                if reply.close:
                    conn.closing = True
        finally:
            conn.wake.set()
            await self._finish(conn)
        return ws

    def _control(self, conn: Conn, message: dict[str, Any]) -> None:
        assert conn.codec is not None
        self._enqueue_frame(conn, next(conn.codec.frames([message])))

    def _subscribers(self) -> list[Conn]:
        return [
            c for c in self.data if c.data is not None and c.data.authenticated and not c.closing and not c.ws.closed
        ]

    def _on_print(self, symbol: str, price: Decimal, size: Decimal, when: datetime) -> None:
        self._call_in_loop(self.feed.deliver_print, symbol, float(price), size, when)

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

    async def _finish(self, conn: Conn) -> None:
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
            "bars_sent": self.feed.bars_sent,
            "corrections_sent": self.feed.corrections_sent,
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
        return web.json_response(hub.feed.burst(count, symbols))

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
