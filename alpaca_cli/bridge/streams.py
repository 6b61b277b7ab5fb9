"""The streaming half of the broker bridge: alpaca-py's two WebSockets, carried into asyncio.

alpaca-py's streams block: `run()` calls `asyncio.run()` itself and loops
forever, so it cannot live on the tool's event loop. Each stream therefore
runs in its own named daemon thread, and its callbacks (coroutines awaited on
the SDK's loop) hand items over only through `loop.call_soon_threadsafe`: an
`asyncio.Queue` is not thread-safe, so it is touched on the tool's loop alone.
Items are handed over in batches, each time the SDK's loop looks at its sockets
(`_HandingSelector`, once per turn of that loop): after it did what it could
with what it had, and before it waits for more.

API (every call on the tool's event loop)::

    async with Broker(connection) as broker:
        trades = await broker.trade_updates_connect()            # TradeUpdateStream
        data = await broker.market_data_connect(["AAPL"], kinds=("bars", "quotes"),
                                                feed="iex", stale_after=150.0)  # MarketDataStream
        update = await trades.updates.get()                      # domain.TradeUpdate
        event = await trades.lifecycle.get()                     # StreamEvent

Both handles share `StreamHandle`:

- `updates` (`TradeUpdateStream`): unbounded `asyncio.Queue[TradeUpdate]`;
  a fill is never dropped. `follow(take)` hands them to `take` instead, as
  they arrive (the supervisor's live path: no turn of the loop in between).
- `items` (`MarketDataStream`): `asyncio.Queue` of `Bar`, `Quote` and `Trade`
  bounded at 10,000; when full the *newest* item is dropped, counted in
  `health.dropped` (and per kind) and logged (at most one warning per 5 s);
  `marks` says where in the queue a (re)connection or a dropped bar happened.
- `lifecycle`: `asyncio.Queue[StreamEvent]`, one event per change:
  `connected` (authenticated and listening/subscribed; `reconnects` > 0 on a
  reconnection), `disconnected` (with `reason`; the SDK reconnects and
  re-subscribes by itself), `stale` (a data socket said nothing for
  `stale_after` seconds; a reconnect is forced), `failed` (permanent, `error`
  holds the CliError; the SDK thread has been stopped).
- `connected`: a `threading.Event`, set while subscribed (readable from any thread).
- `health` (`StreamHealth`) and `health_record()`: the dict `alpaca_cli.health.write` takes.
- `failure`: the CliError that ended the stream, else None.
- `await connect(timeout)`: start the thread, wait for the first subscription;
  raises `AuthError` (exit 3), `ConnectionLimitError` (exit 5) or
  `UnreachableError` (exit 4, nothing connected within `timeout`).
- `await stop()`: stop the SDK and join its thread for at most 5 s (warns and
  abandons a stuck daemon thread); never raises. `connect` and `stop` are
  serialized by an `asyncio.Lock`. `async with handle:` does both.
- `force_reconnect(reason)`: close the socket on the SDK's loop; the SDK
  reconnects with its backoff and re-subscribes.

The market-data half (`MarketDataStream`, `_BridgeDataStream`) is in `bridge/marketdata.py`, so
that following trade updates never imports alpaca-py's market-data package (pandas).

Where alpaca-py 0.44 is blind, one pair of small subclasses (`_BridgeTradingStream`
here, `_BridgeDataStream` in `marketdata.py`, sharing `Lifecycle`) overrides `run` and its
private hooks `_run_forever`, `_start_ws`, `_connect`, `_dispatch`, `_consume` and uses
`stop_ws`/`close`:

- the trading stream's socket is `bridge.websocket`'s (aiohttp's client,
  raising `websockets`' errors), not `websockets.legacy`: the same calls, a
  shorter way per fill;
- it learns "connected" from the `listening` / `subscription` acknowledgement
  and "disconnected" (with the reason) when `_consume` ends;
- it fails fast where the SDK retries forever: refused keys, the connection
  limit (trading: HTTP 429 at the upgrade or close 1008; data: error 406 in
  place of "connected"), an insufficient subscription (409), a symbol limit (405);
  within `LIMIT_GRACE` seconds of the end of our own last connection to the same
  stream (of this handle, or of an earlier handle of the same `Broker`), a
  connection-limit refusal is retried instead, since it may be that socket, not
  yet reaped by the broker. This is the only place that grace is given;
- a handshake that gets no answer times out (`HANDSHAKE_TIMEOUT`) instead of hanging;
- a connection that reached the acknowledgement resets the SDK's backoff, so
  a long session's occasional drops are each retried after about a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import selectors
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from alpaca.common.utils import get_default_user_agent
from alpaca.trading.stream import TradingStream
from websockets.exceptions import ConnectionClosed, WebSocketException

from alpaca_cli.bridge import mapping
from alpaca_cli.config import Connection
from alpaca_cli.domain import TradeUpdate
from alpaca_cli.errors import AuthError, CliError, ConnectionLimitError, RouteNotFound, UnreachableError
from alpaca_cli.health import StreamName

log = logging.getLogger(__name__)

JOIN_TIMEOUT = 5.0  # seconds `stop()` waits for an SDK thread
CONNECT_TIMEOUT = 30.0  # seconds `connect()` waits for the first subscription
HANDSHAKE_TIMEOUT = 10.0  # seconds for connect + auth before an attempt counts as failed
LIMIT_GRACE = 60.0  # seconds a connection-limit refusal is retried after our own connection ended

AUTH_HINT = "check APCA_API_KEY_ID / APCA_API_SECRET_KEY and paper vs live"
PING_TIMEOUT = "keepalive ping timeout"  # websockets' reason for closing a silent socket (bridge.websocket's too)


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One change of a stream's connection, as the tool's loop sees it (printed by
    `output.records.stream`)."""

    stream: StreamName
    event: str  # "connected" | "disconnected" | "stale" | "failed"
    at: datetime
    reconnects: int = 0  # connections made after the first, as of this event
    reason: str | None = None
    error: CliError | None = None


@dataclass
class StreamHealth:
    """Counters and times of one stream; owned by the tool's loop."""

    connected: bool = False
    connected_since: datetime | None = None
    connections: int = 0
    reconnects: int = 0
    last_reconnect_at: datetime | None = None
    last_disconnect_at: datetime | None = None
    last_disconnect_reason: str | None = None
    last_error: str | None = None  # of the last failed connection attempt
    received: int = 0
    dropped: int = 0
    stale_reconnects: int = 0
    last_message_at: datetime | None = None


# --------------------------------------------------------------------------- failures


def describe(error: BaseException) -> str:
    """A short reason for a failed attempt or a lost connection (never a traceback)."""
    if isinstance(error, ConnectionClosed):
        frame = error.rcvd
        if frame is None:
            if error.sent is not None and error.sent.reason == PING_TIMEOUT:
                return "connection lost (no answer to a ping)"
            return "connection lost (no close frame)"
        return f"connection closed ({frame.code}{' ' + frame.reason if frame.reason else ''})"
    status = http_status(error)
    if status is not None:
        return f"HTTP {status} at the WebSocket upgrade"
    if isinstance(error, TimeoutError):
        return f"no answer to the handshake within {HANDSHAKE_TIMEOUT:.0f} s"
    if isinstance(error, OSError):
        return f"cannot connect: {error.strerror or error}"
    return f"{type(error).__name__}: {error}"


def http_status(error: BaseException) -> int | None:
    """The HTTP status of a refused WebSocket upgrade: `InvalidStatus` (the trading stream's
    `bridge.websocket`) or `InvalidStatusCode` (the data stream's `websockets.legacy`)."""
    status = getattr(error, "status_code", None)
    if status is None:
        status = getattr(getattr(error, "response", None), "status_code", None)
    return status if isinstance(status, int) else None


def limit_error(stream: StreamName, detail: str) -> ConnectionLimitError:
    return ConnectionLimitError(
        f"{stream} stream: connection limit reached ({detail})",
        hint=f"another process already holds this account's {stream} stream; stop it or use other keys",
    )


def trading_refusal(error: BaseException) -> CliError | None:
    """The permanent error behind a failed trading-stream attempt, or None if worth retrying."""
    if isinstance(error, ValueError) and "authenticate" in str(error):
        return AuthError(f"{StreamName.trade_updates} stream: the broker refused the credentials", hint=AUTH_HINT)
    status = http_status(error)
    if status in (401, 403):
        return AuthError(
            f"{StreamName.trade_updates} stream: the broker refused the credentials (HTTP {status})", hint=AUTH_HINT
        )
    if status == 429:
        return limit_error(StreamName.trade_updates, "HTTP 429")
    if isinstance(error, ConnectionClosed) and error.rcvd is not None and error.rcvd.code == 1008:
        return limit_error(StreamName.trade_updates, f"closed 1008 {error.rcvd.reason}".strip())
    return None


class _StoppedDuringHandshake(WebSocketException):
    """A stop cut a connection attempt short; the SDK's loop then sees the stop and returns."""


class _HandingSelector(selectors.DefaultSelector):
    """The SDK loop's selector: before each look at the sockets (once per turn of the loop),
    the items heard since the last one are handed over (`StreamHandle._hand_over`), in one batch.

    That is the moment the loop has done all it could with what it had, and when it has
    nothing else to do it waits right after: a lone fill is handed over as soon as its frame
    is dispatched and the GIL is let go right after the tool's loop is woken; frames read
    together (a fill right behind its order's `new`, a burst of bars) travel together, one
    wake-up of the tool's loop for all of them.
    """

    def __init__(self, handle: StreamHandle) -> None:
        super().__init__()
        self._handle = handle

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        self._handle._hand_over()
        return super().select(timeout)


# ----------------------------------------------------------------- SDK subclasses


class Lifecycle:
    """What the bridge adds to an SDK stream; runs on the SDK's thread and loop.

    `_handle` receives the lifecycle (thread-safe methods of `StreamHandle`).
    """

    _handle: StreamHandle
    _ws: Any
    _data_received: bool

    def _bridge_init(self, handle: StreamHandle) -> None:
        self._handle = handle
        self._live = False  # acknowledged on the current socket
        self._close_reason: str | None = None
        self._gave_up = False
        self._handshake: asyncio.Future[None] | None = None

    def _refusal(self, error: BaseException) -> CliError | None:
        raise NotImplementedError

    def run(self) -> None:
        """The SDK's `run()` (`asyncio.run(self._run_forever())`), on a loop that hands what
        it heard over to the tool's loop each time it looks at its sockets (`_HandingSelector`)."""
        handle = self._handle
        with asyncio.Runner(loop_factory=lambda: asyncio.SelectorEventLoop(_HandingSelector(handle))) as runner:
            runner.run(self._run_forever())

    async def _run_forever(self) -> None:
        self._handle._sdk_started(asyncio.get_running_loop())
        await super()._run_forever()  # type: ignore[misc]

    async def _start_ws(self) -> None:
        self._close_reason = None
        # A task of its own, so that a stop can cut a handshake short: a broker that
        # never answers the upgrade must not hold the thread for the whole timeout.
        self._handshake = asyncio.ensure_future(asyncio.wait_for(super()._start_ws(), HANDSHAKE_TIMEOUT))  # type: ignore[misc]
        try:
            await self._handshake
        except asyncio.CancelledError:
            if not self._handshake.cancelled() or asyncio.current_task().cancelling():  # type: ignore[union-attr]
                raise
            raise _StoppedDuringHandshake from None  # the SDK closes, sees the stop, and returns
        except Exception as error:
            await self._attempt_failed(error)
            raise
        finally:
            self._handshake = None

    async def _consume(self) -> Any:
        reason = "stopped"
        try:
            return await super()._consume()  # type: ignore[misc]
        except Exception as error:
            reason = self._close_reason or describe(error)
            raise
        finally:
            self._socket_ended(reason)

    def _acknowledged(self) -> None:
        if self._live:
            return
        self._live = True
        # A connection that got this far counts as healthy: the SDK then
        # retries the next drop after about a second instead of its grown backoff.
        self._data_received = True
        self._handle._sdk_connected()

    def _socket_ended(self, reason: str) -> None:
        if self._live:
            self._live = False
            self._handle._sdk_disconnected(reason)

    async def _attempt_failed(self, error: BaseException) -> None:
        refusal = self._refusal(error) or self._no_such_route(error)
        if isinstance(refusal, ConnectionLimitError) and self._handle.in_limit_grace():
            refusal = None  # perhaps our own socket that just dropped, not yet reaped: retried
        if refusal is not None:
            await self._give_up(refusal)
        else:
            self._handle._sdk_attempt_failed(describe(error))

    def _no_such_route(self, error: BaseException) -> RouteNotFound | None:
        """A 404 at the upgrade: the URL is wrong, and no retry will make it right."""
        if http_status(error) != 404:
            return None
        handle = self._handle
        setting = (
            "the sandbox URL (--sandbox / ALPACA_CLI_SANDBOX_URL)"
            if handle._connection.environment == "sandbox"
            else handle.url_setting
        )
        return RouteNotFound(
            f"{handle.name} stream: {self._endpoint} answered 404 at the WebSocket upgrade: no such route",  # type: ignore[attr-defined]
            hint=f"is {setting} right?",
        )

    async def _give_up(self, error: CliError) -> None:
        """Report a permanent failure and make the SDK's `run()` return."""
        if self._gave_up:
            return
        self._gave_up = True
        self._handle._sdk_failed(error)
        await self._bridge_stop()

    async def _bridge_stop(self) -> None:
        """Stop for good: the stop flag first, then the socket, so `_consume` wakes at once
        (and a handshake under way is abandoned)."""
        self._close_reason = "stopped"
        await self.stop_ws()  # type: ignore[attr-defined]
        if self._handshake is not None:
            self._handshake.cancel()
        await self.close()  # type: ignore[attr-defined]

    async def _bridge_reconnect(self, reason: str) -> None:
        if self._ws is not None:
            self._close_reason = reason
            await self.close()  # type: ignore[attr-defined]


class _QuickTradingStream(TradingStream):
    """The SDK's receive loop without its per-message `asyncio.wait_for` (a task and a
    timer per message, on the path of every fill). The 5 s timeout only served to poll
    the stop queue; the bridge stops by closing the socket, which ends `recv()` at once."""

    async def _consume(self) -> None:
        while True:
            if not self._stop_stream_queue.empty():
                self._stop_stream_queue.get(timeout=1)
                await self.close()
                break
            msg = orjson.loads(await self._ws.recv())  # its JSONDecodeError is json's
            if msg.get("stream") == "trade_updates":
                self._data_received = True
            await self._dispatch(msg)


class _BridgeTradingStream(Lifecycle, _QuickTradingStream):
    async def _connect(self) -> None:
        # Imported here, on the stream's thread: `stream bars` never loads aiohttp's client,
        # and `tail` loads it while its first snapshot is being fetched.
        from alpaca_cli.bridge import websocket

        self._ws = await websocket.connect(self._endpoint, {"User-Agent": get_default_user_agent()})

    def _refusal(self, error: BaseException) -> CliError | None:
        return trading_refusal(error)

    async def _dispatch(self, msg: dict[str, Any]) -> None:
        stream = msg.get("stream")
        if stream == "trade_updates":  # the SDK's own dispatch, with raw data, minus two calls per fill
            if self._trade_updates_handler is not None:
                await self._trade_updates_handler(msg)
            return
        if stream == "listening":
            data = msg.get("data") or {}
            if "trade_updates" in (data.get("streams") or []):
                self._acknowledged()
            elif data.get("error"):
                log.warning("%s stream: the broker did not accept listen: %s", StreamName.trade_updates, data["error"])
        elif stream == "authorization" and (msg.get("data") or {}).get("status") == "unauthorized":
            await self._give_up(trading_refusal(ValueError("failed to authenticate")))  # type: ignore[arg-type]
            return
        await super()._dispatch(msg)


# ------------------------------------------------------------------------ handles


def _now() -> datetime:
    return datetime.now(UTC)


class StreamHandle:
    """One SDK stream in its thread, seen from the tool's loop (see the module docstring)."""

    name: StreamName
    url_setting = ""  # where the stream's URL comes from, for the hint of a 404
    received_key = "messages_received"

    def __init__(self, connection: Connection, *, join_timeout: float = JOIN_TIMEOUT) -> None:
        self._connection = connection
        self._loop = asyncio.get_running_loop()
        self.join_timeout = join_timeout
        self.lifecycle: asyncio.Queue[StreamEvent] = asyncio.Queue()
        self.connected = threading.Event()
        self.health = StreamHealth()
        self.failure: CliError | None = None
        self._lock = asyncio.Lock()
        self._settled: asyncio.Future[None] = self._loop.create_future()
        self._thread: threading.Thread | None = None
        self._stream: Lifecycle | None = None
        self._sdk_loop: asyncio.AbstractEventLoop | None = None
        self._sdk_ready = threading.Event()
        self._stopping = False
        self._stopped = False
        # Monotonic time our own last connection of this stream ended (None: none ended yet);
        # set from the SDK's thread and read there too, a float either way.
        self.held_until: float | None = None
        self._heard: list[Any] = []  # items mapped, not yet handed over (the SDK's thread only)

    # ----------------------------------------------------- the tool's loop: API

    @property
    def stopped(self) -> bool:
        return self._stopped

    def in_limit_grace(self, now: float | None = None) -> bool:
        """Whether a connection-limit refusal now may still be our own last socket (thread-safe)."""
        held = self.held_until
        moment = time.monotonic() if now is None else now
        return held is not None and moment - held < LIMIT_GRACE

    async def connect(self, timeout: float = CONNECT_TIMEOUT) -> None:
        async with self._lock:
            if self._thread is None:
                self._start()
            try:
                await asyncio.wait_for(asyncio.shield(self._settled), timeout)
            except TimeoutError:
                detail = self.health.last_error or "no answer"
                self._fail(UnreachableError(f"{self.name} stream: not connected after {timeout:.0f} s ({detail})"))
            if self.failure is not None:
                await self._stop_locked()
                raise self.failure
            self._on_ready()

    async def stop(self) -> None:
        async with self._lock:
            await self._stop_locked()

    def force_reconnect(self, reason: str = "reconnect requested") -> None:
        """Close the current socket; the SDK reconnects (with backoff) and re-subscribes."""
        if self._stream is not None and not self._stopping:
            self._on_sdk_loop(functools.partial(self._stream._bridge_reconnect, reason))

    @property
    def sdk_loop(self) -> asyncio.AbstractEventLoop | None:
        """The SDK thread's event loop, for diagnostics and tests."""
        return self._sdk_loop

    def health_record(self) -> dict[str, Any]:
        """This stream's health as `alpaca_cli.health.write` stores it."""
        h = self.health
        return {
            "connected": h.connected,
            "connected_since": h.connected_since,
            "last_message_at": h.last_message_at,
            "reconnects": h.reconnects,
            "last_reconnect_at": h.last_reconnect_at,
            "last_disconnect_at": h.last_disconnect_at,
            "last_disconnect_reason": h.last_disconnect_reason,
            self.received_key: h.received,
            "failed": self.failure.line() if self.failure else None,
        }

    async def __aenter__(self) -> StreamHandle:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        try:
            await self.stop()
        except Exception:  # never mask what is already on its way out
            log.warning("%s stream did not stop cleanly", self.name, exc_info=True)

    # ------------------------------------------------------ the tool's loop: internals

    def _make_sdk_stream(self) -> Lifecycle:
        raise NotImplementedError

    def _on_ready(self) -> None:
        """Hook for subclasses, after the first subscription."""

    def _start(self) -> None:
        self._stream = self._make_sdk_stream()
        self._thread = threading.Thread(target=self._thread_main, name=f"alpaca-stream-{self.name}", daemon=True)
        self._thread.start()

    def _thread_main(self) -> None:
        stream = self._stream
        assert stream is not None
        try:
            stream.run()  # type: ignore[attr-defined]
        except Exception as error:
            log.debug("%s stream thread crashed", self.name, exc_info=True)
            self._sdk_failed(UnreachableError(f"{self.name} stream stopped unexpectedly: {describe(error)}"))
        finally:
            self._sdk_ready.set()
            self._hand_over()  # what was heard comes before the news that the thread ended
            self._from_sdk(self._on_thread_ended)

    async def _stop_locked(self) -> None:
        thread, stream = self._thread, self._stream
        if thread is None or self._stopped:
            return
        self._stopping = True
        self._on_stopping()
        if thread.is_alive():
            await asyncio.to_thread(self._sdk_ready.wait, self.join_timeout)
            if stream is not None:
                self._on_sdk_loop(stream._bridge_stop)
            await asyncio.to_thread(thread.join, self.join_timeout)
        if thread.is_alive():
            log.warning(
                "%s stream: thread %s did not stop within %.0f s; abandoning it (daemon thread)",
                self.name,
                thread.name,
                self.join_timeout,
            )
        self._stopped = True
        self.connected.clear()
        self.health.connected = False

    def _on_stopping(self) -> None:
        """Hook for subclasses: stop their own tasks before the SDK stops."""

    def _on_sdk_loop(self, start: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run `start()` as a task on the SDK's loop, unless that loop is gone (then the thread is ending).

        The coroutine is created on the SDK's loop, not here: a loop that is
        closing may drop the callback, and a coroutine made in advance would
        then be garbage that warns "never awaited" on stderr.
        """
        sdk_loop = self._sdk_loop
        if sdk_loop is None or sdk_loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # closed between the check and the call
            sdk_loop.call_soon_threadsafe(lambda: sdk_loop.create_task(start()))

    def _emit(
        self, event: str, *, at: datetime | None = None, reason: str | None = None, error: CliError | None = None
    ) -> None:
        self.lifecycle.put_nowait(StreamEvent(self.name, event, at or _now(), self.health.reconnects, reason, error))

    def _fail(self, error: CliError) -> None:
        if self.failure is not None:
            return
        self.failure = error
        self.health.connected = False
        self.connected.clear()
        self._emit("failed", error=error)
        if not self._settled.done():
            self._settled.set_result(None)

    def _on_connected(self, at: datetime) -> None:
        h = self.health
        if h.connections:
            h.reconnects += 1
            h.last_reconnect_at = at
        h.connections += 1
        h.connected = True
        h.connected_since = at
        h.last_error = None
        self._emit("connected", at=at)
        if not self._settled.done():
            self._settled.set_result(None)

    def _on_disconnected(self, at: datetime, reason: str) -> None:
        h = self.health
        h.connected = False
        h.last_disconnect_at = at
        h.last_disconnect_reason = reason
        self._emit("disconnected", at=at, reason=reason)

    def _on_attempt_failed(self, reason: str) -> None:
        self.health.last_error = reason
        log.debug("%s stream: connection attempt failed: %s", self.name, reason)

    def _on_thread_ended(self) -> None:
        if not self._stopping and self.failure is None:
            self._fail(UnreachableError(f"{self.name} stream ended unexpectedly"))

    # ------------------------------------------------- the SDK's thread (thread-safe)

    def _from_sdk(self, callback: Any, *args: Any) -> None:
        # Once per bar: a bare try is cheaper than contextlib.suppress.
        try:  # noqa: SIM105
            self._loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:  # the tool's loop is closed: nobody is left to tell
            pass

    def _hear(self, item: Any) -> None:
        """An item off the socket, for `_put_heard` on the tool's loop: handed over with the
        rest of its batch when the SDK's loop next looks at its sockets (`_HandingSelector`)."""
        self._heard.append(item)

    def _hand_over(self) -> None:
        if self._heard:
            heard, self._heard = self._heard, []
            self._from_sdk(self._put_heard, heard)

    def _put_heard(self, items: list[Any]) -> None:
        """On the tool's loop: a batch of items, in the order they were heard."""
        raise NotImplementedError

    def _sdk_started(self, loop: asyncio.AbstractEventLoop) -> None:
        self._sdk_loop = loop
        self._sdk_ready.set()

    def _sdk_connected(self) -> None:
        self.connected.set()
        self._from_sdk(self._on_connected, _now())

    def _sdk_disconnected(self, reason: str) -> None:
        self._hand_over()  # what the socket said comes before the news that it ended
        self.held_until = time.monotonic()
        self.connected.clear()
        self._from_sdk(self._on_disconnected, _now(), reason)

    def _sdk_attempt_failed(self, reason: str) -> None:
        self._from_sdk(self._on_attempt_failed, reason)

    def _sdk_failed(self, error: CliError) -> None:
        self._hand_over()
        self.connected.clear()
        self._from_sdk(self._fail, error)


class TradeUpdateStream(StreamHandle):
    """The account's `trade_updates`; every event reaches `updates`, none is ever dropped."""

    name = StreamName.trade_updates
    url_setting = "APCA_API_STREAM_URL (or APCA_API_BASE_URL, which it is derived from)"
    received_key = "updates_received"

    def __init__(self, connection: Connection, *, join_timeout: float = JOIN_TIMEOUT) -> None:
        super().__init__(connection, join_timeout=join_timeout)
        self.updates: asyncio.Queue[TradeUpdate] = asyncio.Queue()
        self._follower: Callable[[list[TradeUpdate]], None] | None = None

    def follow(self, take: Callable[[list[TradeUpdate]], None] | None) -> None:
        """Hand each batch of updates to `take` as it arrives, on the tool's loop, instead of
        queueing it in `updates` (None: queue again). What is queued goes first: order holds."""
        self._follower = take
        if take is not None and not self.updates.empty():
            queued = []
            while not self.updates.empty():
                queued.append(self.updates.get_nowait())
            take(queued)

    def _make_sdk_stream(self) -> Lifecycle:
        c = self._connection
        stream = _BridgeTradingStream(
            c.key_id,
            c.secret.get_secret_value(),
            paper=not c.is_live,
            raw_data=True,
            url_override=c.stream_url,
        )
        stream._bridge_init(self)

        async def on_update(message: dict[str, Any]) -> None:  # on the SDK's loop
            try:
                update = mapping.trade_update(message["data"])
            except (KeyError, TypeError, ValueError, ArithmeticError):
                log.error("%s stream: unreadable trade update skipped: %.300r", self.name, message)
                return
            self._hear(update)

        stream.subscribe_trade_updates(on_update)
        return stream

    def _put_heard(self, updates: list[TradeUpdate]) -> None:
        if self._follower is not None:
            self._follower(updates)  # first: the fill's line before the bookkeeping
        else:
            for update in updates:
                self.updates.put_nowait(update)
        self.health.received += len(updates)
        self.health.last_message_at = _now()
