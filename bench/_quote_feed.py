"""A market-data feed that does nothing but send quotes, as fast as a socket takes them.

`bench/quotes_throughput.py` measures how fast a consumer turns quotes into
JSON lines; the sandbox's quotes follow its price walk (a few per tick), too
slow to load a consumer. This server speaks the market-data stream's
handshake (msgpack: connected, auth, subscription ack, as in
docs/alpaca-wire.md section 4) on `/v2/iex` and `/v2/sip`, and
`POST /burst?feed=F&count=N` sends N quotes to the consumer on feed F in
frames of 1,000 messages, round-robin over the symbols it subscribed.

`python -m bench._quote_feed PORT` serves until killed.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime

import msgpack
from aiohttp import WSMsgType, web

FRAME = 1_000  # quotes per frame, as Alpaca batches them


def _quotes(symbols: list[str], count: int) -> list[bytes]:
    """`count` quotes packed into frames; prices walk a little, times grow by a microsecond."""
    start = datetime.now(UTC).timestamp()
    messages = []
    for i in range(count):
        price = 100 + (i % 200) / 100
        seconds = start + i / 1_000_000
        messages.append(
            {
                "T": "q",
                "S": symbols[i % len(symbols)],
                "bx": "V",
                "bp": round(price - 0.01, 2),
                "bs": 1 + i % 5,
                "ax": "V",
                "ap": round(price + 0.01, 2),
                "as": 1 + i % 3,
                "c": ["R"],
                "z": "C",
                "t": msgpack.Timestamp.from_unix(seconds),
            }
        )
    return [msgpack.packb(messages[i : i + FRAME]) for i in range(0, count, FRAME)]


class Feed:
    def __init__(self) -> None:
        self.consumers: dict[str, tuple[web.WebSocketResponse, list[str]]] = {}

    async def stream(self, request: web.Request) -> web.WebSocketResponse:
        feed = request.match_info["feed"]
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        await ws.send_bytes(msgpack.packb([{"T": "success", "msg": "connected"}]))
        async for message in ws:
            if message.type not in (WSMsgType.BINARY, WSMsgType.TEXT):
                break
            action = msgpack.unpackb(message.data) if message.type == WSMsgType.BINARY else {}
            if action.get("action") == "auth":
                await ws.send_bytes(msgpack.packb([{"T": "success", "msg": "authenticated"}]))
            elif action.get("action") == "subscribe":
                symbols = list(action.get("quotes", []))
                self.consumers[feed] = (ws, symbols)
                ack = {"T": "subscription", "trades": [], "quotes": symbols, "bars": []}
                await ws.send_bytes(msgpack.packb([ack]))
        self.consumers.pop(feed, None)
        return ws

    async def burst(self, request: web.Request) -> web.Response:
        feed, count = request.query["feed"], int(request.query["count"])
        ws, symbols = self.consumers[feed]
        for frame in await asyncio.to_thread(_quotes, symbols, count):
            await ws.send_bytes(frame)
        return web.json_response({"sent": count})

    async def subscribed(self, request: web.Request) -> web.Response:
        return web.json_response({feed: len(symbols) for feed, (_, symbols) in self.consumers.items()})


def main(port: int) -> None:
    feed = Feed()
    app = web.Application()
    app.router.add_get("/v2/{feed}", feed.stream)
    app.router.add_post("/burst", feed.burst)
    app.router.add_get("/subscribed", feed.subscribed)
    web.run_app(app, host="127.0.0.1", port=port, print=None)


if __name__ == "__main__":
    main(int(sys.argv[1]))
