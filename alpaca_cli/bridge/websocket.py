"""The trading stream's WebSocket: aiohttp's client, speaking `websockets`' errors.

Why not the SDK's own (`websockets.legacy`): a fill's way from the socket to
the JSON line is `tail`'s hot path, and the legacy client hands each message
over through several task wake-ups (a reader task, a queue, an `asyncio.wait`
per `recv()`), all on the SDK's thread, where they also hold the GIL the
tool's loop is waiting for. aiohttp's reader (compiled) delivers a message to
a waiting `receive()` in one wake-up: about 90 µs less per message here, a
third of what `tail` added to a bare client (`docs/benchmarks.md`,
fill_latency). aiohttp is already installed for the sandbox's server.

The market-data stream keeps `websockets.legacy`: alpaca-py sends a long
subscription there as a fragmented message (Alpaca's data server limits the
size of a frame), which aiohttp's client has no way to send.

The SDK's loop stays as it is: it calls `recv()`, `send()` and `close()`
on its `_ws`, and knows only `websockets`' exceptions (a
`websockets.WebSocketException` is what sends its `_run_forever` into a
reconnect). So `Socket` raises those, and the bridge reads them in one way
(`streams.describe`, `streams.http_status`):

- a refused upgrade is `InvalidStatus`, with the HTTP status (401, 429, 404 ...);
- a socket that ended is `ConnectionClosedError`, with the close frame the
  broker sent (code and reason: 1008 is the connection limit) or none when
  the connection was lost without one.

Pings: aiohttp sends one after `HEARTBEAT` s without a message and gives up on
the socket when no pong comes within half that: a dead peer is noticed within
30 s, as on the market-data stream (a ping every 10 s, 20 s for its pong). A
pong late by seconds is not a dead peer, and each reconnection costs a
reconciliation (REST requests under the rate limit), so the window is not
made shorter.
"""

from __future__ import annotations

from collections.abc import Mapping

import aiohttp
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosedError, InvalidStatus
from websockets.frames import Close
from websockets.http11 import Response

HEARTBEAT = 20.0  # seconds without a message before a ping; its pong may take half that
CLOSE_TIMEOUT = 2.0  # seconds `close()` waits for the broker's close frame (a stop stays quick)
MAX_MESSAGE = 2**20  # bytes, as the SDK allows (websockets' default): a trade update is about 1 KB

_DATA = (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY)


async def connect(url: str, headers: Mapping[str, str]) -> Socket:
    """Open a WebSocket; a refused upgrade raises `InvalidStatus`, an unreachable host `OSError`."""
    session = aiohttp.ClientSession()
    try:
        ws = await session.ws_connect(
            url,
            headers=dict(headers),
            heartbeat=HEARTBEAT,
            max_msg_size=MAX_MESSAGE,
            timeout=aiohttp.ClientWSTimeout(ws_close=CLOSE_TIMEOUT),
        )
    except aiohttp.WSServerHandshakeError as error:
        await session.close()
        raise InvalidStatus(Response(error.status, error.message or "", Headers())) from None
    except aiohttp.ServerDisconnectedError:
        await session.close()
        raise ConnectionClosedError(None, None) from None
    except BaseException:  # a timeout or a stop cancels the handshake: leave no session open
        await session.close()
        raise
    return Socket(session, ws)


class Socket:
    """One open WebSocket, as the SDK's trading stream uses it (`recv`, `send`, `close`)."""

    def __init__(self, session: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._session = session
        self._ws = ws

    async def recv(self) -> str | bytes:
        """The next text or binary message; `ConnectionClosedError` once the socket ended."""
        message = await self._ws.receive()
        if message.type in _DATA:
            return message.data  # type: ignore[no-any-return]
        if message.type is aiohttp.WSMsgType.CLOSE:
            # A close frame without a code reads as 0 here; websockets says 1005 ("no status").
            raise ConnectionClosedError(Close(message.data or 1005, message.extra or ""), None)
        if message.type is aiohttp.WSMsgType.ERROR and isinstance(message.data, aiohttp.ServerTimeoutError):
            # No pong: closed as websockets closes it, in its words (`streams.PING_TIMEOUT` reads them).
            raise ConnectionClosedError(None, Close(1011, "keepalive ping timeout"))
        raise ConnectionClosedError(None, None)  # lost, closing, or a protocol error

    async def send(self, message: str | bytes) -> None:
        """Send a text (str) or binary (bytes) message; `ConnectionClosedError` once the socket ended."""
        try:
            if isinstance(message, str):
                await self._ws.send_str(message)
            else:
                await self._ws.send_bytes(message)
        except ConnectionError:  # aiohttp's "cannot write to closing transport"
            raise ConnectionClosedError(None, None) from None

    async def close(self) -> None:
        try:
            await self._ws.close()
        finally:
            await self._session.close()
