"""One open WebSocket of the sandbox's streams, and what is still to be sent on it.

Shared by the stream hub (`streams`: sockets, writers, faults) and the market
data feed (`datafeed`: what goes to which data connection).
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from alpaca_cli.sandbox import marketdata as md
from alpaca_cli.sandbox import tradestream as ts


@dataclass(eq=False)
class Conn:
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
