"""The broker bridge: the only package that imports alpaca-py.

Commands talk to Alpaca (or the sandbox) only through `Broker`, an async
context manager. It runs the blocking SDK off the event loop and hands back
the project's own domain types and errors, so the rest of the code never
touches an SDK object. The streams (`bridge/streams.py`) are opened through
it too, so leaving the `async with` stops their threads.
"""

from __future__ import annotations

from alpaca_cli.bridge.deferred import defer_pandas

defer_pandas()  # before alpaca-py is imported: its trading package imports pandas for one validator

import logging  # noqa: E402
from collections.abc import Iterable  # noqa: E402
from types import TracebackType  # noqa: E402
from typing import TYPE_CHECKING, Any  # noqa: E402

from alpaca_cli.bridge.rest import RestBridge  # noqa: E402
from alpaca_cli.config import Connection  # noqa: E402

if TYPE_CHECKING:
    from alpaca_cli.bridge.marketdata import MarketDataStream
    from alpaca_cli.bridge.streams import StreamEvent, StreamHandle, TradeUpdateStream
    from alpaca_cli.health import StreamName

log = logging.getLogger(__name__)


class Broker(RestBridge):
    """`async with Broker(connection) as broker:` — REST calls, plus the two streams."""

    def __init__(self, connection: Connection) -> None:
        super().__init__(connection)
        self._streams: list[StreamHandle] = []
        self._held_until: dict[StreamName, float] = {}  # when our last connection of each stream ended

    def _adopt(self, stream: StreamHandle) -> StreamHandle:
        """Track a new handle (stopped at exit), telling it when our own previous connection of
        its stream ended: a connection-limit refusal soon after may be that socket, not yet
        reaped by the broker (`LIMIT_GRACE`). Stopped handles are forgotten, their time kept."""
        for old in self._streams:
            if old.held_until is not None:
                self._held_until[old.name] = max(old.held_until, self._held_until.get(old.name, old.held_until))
        self._streams = [old for old in self._streams if not old.stopped]
        stream.held_until = self._held_until.get(stream.name)
        self._streams.append(stream)
        return stream

    def _connect_timeout(self, asked: float | None) -> float:
        """A stream's connection is a broker call too: no longer than the call deadline."""
        from alpaca_cli.bridge.streams import CONNECT_TIMEOUT

        return asked if asked is not None else min(CONNECT_TIMEOUT, self.deadline)

    async def trade_updates_connect(self, *, connect_timeout: float | None = None) -> TradeUpdateStream:
        """Open the account's trade-update stream; returns once it listens (or raises)."""
        from alpaca_cli.bridge.streams import TradeUpdateStream

        stream = self._adopt(TradeUpdateStream(self.connection))
        await stream.connect(self._connect_timeout(connect_timeout))
        return stream

    async def market_data_connect(
        self,
        symbols: Iterable[str],
        *,
        kinds: Iterable[str] = ("bars",),
        feed: str = "iex",
        stale_after: float | None = None,
        connect_timeout: float | None = None,
        queue_size: int | None = None,
    ) -> MarketDataStream:
        """Open one market-data connection for `kinds` (bars, quotes, trades) of `symbols` -- all
        stocks (on `feed`) or all crypto pairs; returns once subscribed (or raises)."""
        from alpaca_cli.bridge.marketdata import QUEUE_SIZE, MarketDataStream

        stream = MarketDataStream(
            self.connection,
            symbols,
            kinds=kinds,
            feed=feed,
            stale_after=stale_after,
            queue_size=queue_size or QUEUE_SIZE,
        )
        self._adopt(stream)
        await stream.connect(self._connect_timeout(connect_timeout))
        return stream

    async def __aenter__(self) -> Broker:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # A failing shutdown is logged, never raised: it must not mask the
        # error (or the clean exit) that is already on its way out.
        for stream in self._streams:
            try:
                await stream.stop()
            except Exception:
                log.warning("%s stream did not stop cleanly", stream.name, exc_info=True)
        try:
            self.close()
        except Exception:
            log.warning("broker bridge did not close cleanly", exc_info=True)


def __getattr__(name: str) -> Any:
    """The streams load only when asked for: `MarketDataStream` the market-data half, the
    trade-update stream alpaca-py's whole `alpaca.trading` package, which a REST-only command never needs."""
    if name == "MarketDataStream":
        from alpaca_cli.bridge.marketdata import MarketDataStream

        return MarketDataStream
    if name in ("StreamEvent", "TradeUpdateStream"):
        from alpaca_cli.bridge import streams

        return getattr(streams, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Broker", "MarketDataStream", "StreamEvent", "TradeUpdateStream"]
