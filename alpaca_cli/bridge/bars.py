"""The market-data half of the streaming bridge: minute bars into a bounded queue.

Apart from `streams.py` because alpaca-py's market-data package imports pandas
and numpy: only `stream bars` (and whatever else streams market data) pays for
them. The plumbing — the SDK's thread, the lifecycle, failing fast — is
`streams.StreamHandle` and `streams.Lifecycle`, shared with the trade-update stream.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import msgpack
from alpaca.common.utils import get_default_user_agent
from alpaca.data.enums import DataFeed
from alpaca.data.live.stock import StockDataStream
from websockets.legacy import client as websockets_legacy

from alpaca_cli.bridge import mapping
from alpaca_cli.bridge.streams import (
    AUTH_HINT,
    JOIN_TIMEOUT,
    WEBSOCKET_PARAMS,
    Lifecycle,
    StreamHandle,
    limit_error,
)
from alpaca_cli.config import Connection
from alpaca_cli.domain import Bar
from alpaca_cli.errors import AuthError, CliError, UsageError
from alpaca_cli.health import StreamName

log = logging.getLogger(__name__)

BAR_QUEUE_SIZE = 10_000
DROP_LOG_EVERY = 5.0  # seconds between "bar queue full" warnings


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


class _BridgeDataStream(Lifecycle, StockDataStream):
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


class BarStream(StreamHandle):
    """Minute bars of some symbols into a bounded queue; the newest bar is dropped when full."""

    name = StreamName.market_data
    url_setting = "APCA_API_DATA_STREAM_URL"
    received_key = "bars_received"

    def __init__(
        self,
        connection: Connection,
        symbols: Iterable[str],
        *,
        feed: str = "iex",
        stale_after: float | None = None,
        queue_size: int = BAR_QUEUE_SIZE,
        join_timeout: float = JOIN_TIMEOUT,
    ) -> None:
        super().__init__(connection, join_timeout=join_timeout)
        self.symbols = tuple(dict.fromkeys(symbols))
        self.feed = feed
        self.stale_after = stale_after
        self.bars: asyncio.Queue[Bar] = asyncio.Queue(queue_size)
        self._last_activity = self._loop.time()
        self._last_bar_mono: float | None = None
        self._drop_logged_at = -DROP_LOG_EVERY
        self._watchdog: asyncio.Task[None] | None = None

    def health_record(self) -> dict[str, Any]:
        record = super().health_record()
        if self._last_bar_mono is not None:
            # Bars carry a monotonic stamp (cheap per bar); wall time is worked out here.
            ago = self._loop.time() - self._last_bar_mono
            record["last_message_at"] = datetime.fromtimestamp(time.time() - ago, UTC)
        record.update(
            feed=self.feed,
            symbols=list(self.symbols),
            dropped_bars=self.health.dropped,
            stale_reconnects=self.health.stale_reconnects,
            queue_depth=self.bars.qsize(),
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

    def _make_sdk_stream(self) -> Lifecycle:
        c = self._connection
        stream = _BridgeDataStream(
            c.key_id,
            c.secret.get_secret_value(),
            raw_data=True,
            feed=DataFeed(self.feed),
            url_override=c.data_stream_url(self.feed),
            websocket_params=dict(WEBSOCKET_PARAMS),
        )
        stream._bridge_init(self)
        put_many = self._put_bars
        hand_over = self._from_sdk
        # Bars of one burst travel together: one `call_soon_threadsafe` (one
        # wake-up of the tool's loop) per batch instead of per bar. The batch is
        # handed over once the SDK's loop gets round to its callbacks, i.e. when
        # the frame being read has been dispatched, so no bar waits longer than that.
        batch: list[Bar] = []  # touched on the SDK's loop only

        def hand_over_batch() -> None:
            bars = batch.copy()
            batch.clear()
            hand_over(put_many, bars)

        async def on_bar(raw: dict[str, Any]) -> None:  # on the SDK's loop
            try:
                bar = mapping.bar(raw)
            except (KeyError, TypeError, ValueError, AttributeError):
                log.warning("%s stream: unreadable bar skipped: %.300r", self.name, raw)
                return
            if not batch:
                asyncio.get_running_loop().call_soon(hand_over_batch)
            batch.append(bar)

        stream.subscribe_bars(on_bar, *self.symbols)
        return stream

    def _put_bars(self, bars: list[Bar]) -> None:
        for bar in bars:
            self._put_bar(bar)

    def _put_bar(self, bar: Bar) -> None:
        now = self._loop.time()
        self._last_bar_mono = self._last_activity = now
        self.health.received += 1
        try:
            self.bars.put_nowait(bar)
        except asyncio.QueueFull:
            self.health.dropped += 1
            if now - self._drop_logged_at >= DROP_LOG_EVERY:
                log.warning(
                    "%s stream: bar queue full (%d): dropped %d newest bar(s) so far",
                    self.name,
                    self.bars.maxsize,
                    self.health.dropped,
                )
                self._drop_logged_at = now

    def _on_connected(self, at: datetime) -> None:
        self._last_activity = self._loop.time()
        super()._on_connected(at)

    def _on_ready(self) -> None:
        self.set_stale_after(self.stale_after)

    def _on_stopping(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None

    async def _watch(self) -> None:
        """Force a reconnect when nothing (no bar, no reconnection) happened for `stale_after` s."""
        while self.stale_after and self.failure is None:
            idle = self._loop.time() - self._last_activity
            if idle < self.stale_after:
                await asyncio.sleep(self.stale_after - idle)
                continue
            self.health.stale_reconnects += 1
            reason = f"no bar for {idle:.0f} s"
            self._emit("stale", reason=reason)
            self._last_activity = self._loop.time()  # give the new connection a full period
            self.force_reconnect(f"stale: {reason}")
