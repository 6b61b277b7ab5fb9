"""The market-data half of the streaming bridge: bars, quotes and trades into one bounded queue.

One `MarketDataStream` is one connection (Alpaca allows one per feed) carrying
every subscription of a command: `stream bars,quotes AAPL MSFT` is one socket
with two channels, not two sockets. Stocks and crypto pairs live on different
endpoints (`/v2/<feed>`, `/v1beta3/crypto/us`), so a command with both opens
one stream for each.

A new kind of market data is one entry in `CHANNELS` (its wire channel and the
`mapping` function that reads it), one line builder in `output.py`, and a
column in the live table.

Apart from `streams.py` because alpaca-py's market-data package imports pandas
and numpy: only commands that stream market data pay for them. The plumbing —
the SDK's thread, the lifecycle, failing fast — is `streams.StreamHandle` and
`streams.Lifecycle`, shared with the trade-update stream.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgpack
from alpaca.common.utils import get_default_user_agent
from alpaca.data.live.websocket import DataStream
from websockets.legacy import client as websockets_legacy

from alpaca_cli.bridge import mapping
from alpaca_cli.bridge.streams import (
    AUTH_HINT,
    JOIN_TIMEOUT,
    Lifecycle,
    StreamHandle,
    limit_error,
)
from alpaca_cli.config import Connection
from alpaca_cli.domain import Bar, Quote, Trade
from alpaca_cli.errors import AuthError, CliError, UsageError
from alpaca_cli.health import StreamName
from alpaca_cli.symbols import is_crypto

log = logging.getLogger(__name__)

# The SDK's own values, plus a shorter ping timeout (a dead peer is noticed in
# about 30 s instead of 190 s) and a short close timeout (stop stays quick).
# This stream keeps `websockets.legacy` (the trading stream is on `bridge.websocket`):
# the SDK sends a long subscription as a fragmented message, which aiohttp's client cannot.
WEBSOCKET_PARAMS: dict[str, Any] = {"ping_interval": 10, "ping_timeout": 20, "max_queue": 1024, "close_timeout": 2}

QUEUE_SIZE = 10_000
DROP_LOG_EVERY = 5.0  # seconds between "queue full" warnings
CRYPTO = "crypto"  # the `feed` of a stream of crypto pairs (Alpaca's location `us`)

Item = Bar | Quote | Trade
# kind -> its wire channels: (channel, the messages' `T`, how one is read)
CHANNELS: dict[str, tuple[tuple[str, str, Callable[[Any], Item]], ...]] = {
    "bars": (("bars", "b", mapping.bar), ("updatedBars", "u", lambda raw: mapping.bar(raw, updated=True))),
    "quotes": (("quotes", "q", mapping.quote),),
    "trades": (("trades", "t", mapping.trade),),
}
KINDS = tuple(CHANNELS)


class StreamRefusal(ValueError):
    """A market-data error message (`{"T":"error","code":...}`) met during the handshake."""

    def __init__(self, code: int | None, message: str) -> None:
        super().__init__(message)
        self.code = code


def data_refusal(code: int | None, message: str) -> CliError | None:
    """Alpaca's market-data error codes that no retry can fix; None for the others."""
    text = message.lower()
    if code == 402 or "auth failed" in text:
        return AuthError(
            f"{StreamName.market_data} stream: the broker refused the credentials ({message})", hint=AUTH_HINT
        )
    if code == 409 or "insufficient subscription" in text:
        return AuthError(
            f"{StreamName.market_data} stream: the account's data subscription does not cover this feed ({message})",
            hint="use --feed iex",
        )
    if code == 406 or "connection limit" in text:
        return limit_error(StreamName.market_data, f"{code or 406} {message}")
    if code == 405 or "symbol limit" in text:
        return UsageError(f"{StreamName.market_data} stream: too many symbols for this plan ({message})")
    return None


class _QuickDataStream(DataStream):
    """The SDK's receive loop without a timer per frame (`asyncio.wait_for`) or a coroutine per
    message: market data goes straight to the bridge's readers, everything else (acks, errors)
    through `_dispatch`. The timeout only served to poll the stop queue; the bridge stops by
    closing the socket, which ends `recv()` at once (as `streams._QuickTradingStream`)."""

    _readers: dict[str, Callable[[dict[str, Any]], None]]  # message type (`T`) -> the bridge's reader

    async def _consume(self) -> bool:
        readers = self._readers
        while True:
            if not self._stop_stream_queue.empty():
                self._stop_stream_queue.get(timeout=1)
                await self.close()
                return False
            for msg in msgpack.unpackb(await self._ws.recv()):
                reader = readers.get(msg.get("T"))
                if reader is None:
                    await self._dispatch(msg)
                else:
                    self._data_received = True
                    reader(msg)


class _BridgeDataStream(Lifecycle, _QuickDataStream):
    def _refusal(self, error: BaseException) -> CliError | None:
        if isinstance(error, StreamRefusal):
            return data_refusal(error.code, str(error))
        if isinstance(error, ValueError):  # the SDK's `_auth` raises the server's `msg`
            return data_refusal(None, str(error))
        return None

    async def _connect(self) -> None:
        """The SDK's connect, but an error in place of "connected" keeps its code (406)."""
        params = dict(self._websocket_params or {})
        headers = {
            **dict(params.pop("extra_headers", {}) or {}),
            "Content-Type": "application/msgpack",
            "User-Agent": get_default_user_agent(),
        }
        self._ws = await websockets_legacy.connect(self._endpoint, extra_headers=headers, **params)
        first = msgpack.unpackb(await self._ws.recv())
        hello = first[0] if isinstance(first, list) and first and isinstance(first[0], dict) else {}
        if hello.get("T") == "error":
            raise StreamRefusal(hello.get("code"), str(hello.get("msg", "")))
        if hello.get("T") != "success" or hello.get("msg") != "connected":
            raise ValueError("connected message not received")

    async def _dispatch(self, msg: dict[str, Any]) -> None:
        kind = msg.get("T")
        if kind == "subscription":
            self._acknowledged()
        elif kind == "error":
            code = msg.get("code")
            text = str(msg.get("msg", ""))
            refusal = data_refusal(code if isinstance(code, int) else None, text)
            if refusal is not None:
                await self._give_up(refusal)
                return
            log.warning("%s stream: the broker reported error %s: %s", StreamName.market_data, code, text)
        await super()._dispatch(msg)


@dataclass(frozen=True, slots=True)
class Mark:
    """Something that happened between two items of the queue: after the first `after` items put.

    `connected`: the stream (re)connected at `at` (the subscription is
    acknowledged); `lost`: a bar was dropped because the queue was full. A
    reader counts the items it takes and meets each mark at its place, which
    it could not do with a separate queue of events.
    """

    after: int
    event: str  # "connected" | "lost"
    at: datetime


class MarketDataStream(StreamHandle):
    """The subscriptions of one market-data connection into a bounded queue; when full, the newest item is dropped."""

    name = StreamName.market_data
    url_setting = "APCA_API_DATA_STREAM_URL"
    received_key = "items_received"

    def __init__(
        self,
        connection: Connection,
        symbols: Iterable[str],
        *,
        kinds: Iterable[str] = ("bars",),
        feed: str = "iex",
        stale_after: float | None = None,
        queue_size: int = QUEUE_SIZE,
        join_timeout: float = JOIN_TIMEOUT,
    ) -> None:
        super().__init__(connection, join_timeout=join_timeout)
        self.symbols = tuple(dict.fromkeys(symbols))
        self.kinds = tuple(kind for kind in KINDS if kind in set(kinds))
        crypto = {is_crypto(symbol) for symbol in self.symbols}
        if len(crypto) > 1 or not self.kinds:
            raise ValueError("one market-data stream carries either stocks or crypto pairs, and some kind of data")
        self.feed = CRYPTO if crypto == {True} else feed
        self.stale_after = stale_after
        self.queue_size = queue_size
        # Unbounded as a queue: the bound is kept by `_put` (marks are never dropped).
        self.items: asyncio.Queue[Item] = asyncio.Queue()
        self.marks: deque[Mark] = deque()
        self.put_count = 0  # items ever put (the position marks refer to)
        self.dropped = dict.fromkeys(self.kinds, 0)
        self._lost_marked = False
        self._last_activity = self._loop.time()
        self._last_item_mono: float | None = None
        self._drop_logged_at = -DROP_LOG_EVERY
        self._watchdog: asyncio.Task[None] | None = None

    def health_record(self) -> dict[str, Any]:
        record = super().health_record()
        if self._last_item_mono is not None:
            # Items carry no wall time of arrival (cheap per item): it is worked out here.
            ago = self._loop.time() - self._last_item_mono
            record["last_message_at"] = datetime.fromtimestamp(time.time() - ago, UTC)
        record.update(
            feed=self.feed,
            symbols=list(self.symbols),
            kinds=list(self.kinds),
            **{f"dropped_{kind}": count for kind, count in self.dropped.items()},
            stale_reconnects=self.health.stale_reconnects,
            queue_depth=self.items.qsize(),
        )
        return record

    def set_stale_after(self, seconds: float | None) -> None:
        """Watch for a mute socket (None: don't, e.g. while the market is closed)."""
        self.stale_after = seconds
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        if seconds and self.health.connections and not self._stopping:
            self._watchdog = asyncio.create_task(self._watch(), name=f"{self.name}-staleness")

    def _endpoint(self) -> str:
        c = self._connection
        if self.feed == CRYPTO:
            return f"{c.data_stream_base.rstrip('/')}/v1beta3/crypto/us"
        return c.data_stream_url(self.feed)

    def _make_sdk_stream(self) -> Lifecycle:
        c = self._connection
        stream = _BridgeDataStream(
            self._endpoint(),
            c.key_id,
            c.secret.get_secret_value(),
            raw_data=True,
            websocket_params=dict(WEBSOCKET_PARAMS),
        )
        stream._bridge_init(self)
        hear = self._hear  # once per item: bound here, not looked up

        def reader(channel: str, read: Callable[[Any], Item]) -> Callable[[dict[str, Any]], None]:
            def on_message(raw: dict[str, Any]) -> None:  # on the SDK's loop
                try:
                    item = read(raw)
                except (KeyError, TypeError, ValueError, AttributeError):
                    log.warning("%s stream: unreadable %s message skipped: %.300r", self.name, channel, raw)
                    return
                hear(item)

            return on_message

        async def subscribed(raw: dict[str, Any]) -> None:
            """What the SDK keeps per subscribed channel and symbol (its subscribe message is made
            from these); `_QuickDataStream._consume` hands market data to the readers directly."""

        stream._readers = {}
        for kind in self.kinds:
            for channel, code, read in CHANNELS[kind]:
                stream._readers[code] = reader(channel, read)
                stream._subscribe(subscribed, self.symbols, stream._handlers[channel])
        return stream

    def _put_heard(self, items: list[Item]) -> None:
        now = self._loop.time()
        self._last_item_mono = self._last_activity = now
        self.health.received += len(items)
        queue = self.items
        for item in items:
            if queue.qsize() < self.queue_size:
                queue.put_nowait(item)
                self.put_count += 1
                self._lost_marked = False
                continue
            kind = "bars" if isinstance(item, Bar) else "quotes" if isinstance(item, Quote) else "trades"
            self.dropped[kind] += 1
            self.health.dropped += 1
            if kind == "bars" and not self._lost_marked:
                self._lost_marked = True
                self.marks.append(Mark(self.put_count, "lost", datetime.now(UTC)))
            if now - self._drop_logged_at >= DROP_LOG_EVERY:
                log.warning(
                    "%s stream: queue full (%d): dropped %d newest item(s) so far",
                    self.name,
                    self.queue_size,
                    self.health.dropped,
                )
                self._drop_logged_at = now

    def _on_connected(self, at: datetime) -> None:
        self._last_activity = self._loop.time()
        self.marks.append(Mark(self.put_count, "connected", at))
        super()._on_connected(at)

    def _on_ready(self) -> None:
        self.set_stale_after(self.stale_after)

    def _on_stopping(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None

    async def _watch(self) -> None:
        """Force a reconnect when nothing (no item, no reconnection) happened for `stale_after` s."""
        while self.stale_after and self.failure is None:
            idle = self._loop.time() - self._last_activity
            if idle < self.stale_after:
                await asyncio.sleep(self.stale_after - idle)
                continue
            self.health.stale_reconnects += 1
            reason = f"no data for {idle:.0f} s"
            self._emit("stale", reason=reason)
            self._last_activity = self._loop.time()  # give the new connection a full period
            self.force_reconnect(f"stale: {reason}")
