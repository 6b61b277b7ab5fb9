"""The baseline of `bench/fill_latency.py`: the least a trade-update consumer can do.

`python -m bench._bare_trade_client WS_URL KEY SECRET` connects to the trading
stream with aiohttp, authenticates, listens to `trade_updates`, then for each
frame only decodes the JSON and writes one line with the event, the order id,
the cumulative fill and the event's own timestamp, flushed per line, as
`alpaca-cli tail trade-updates -o json` does. No SDK, no threads, no queue, no
state, no deduplication: whatever `tail` costs on top of this is the price of
the bridge, the supervisor and the CLI.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys

import aiohttp


async def main(url: str, key: str, secret: str) -> None:
    out = sys.stdout
    async with aiohttp.ClientSession() as session, session.ws_connect(url, max_msg_size=0) as ws:
        await ws.send_str(json.dumps({"action": "authenticate", "data": {"key_id": key, "secret_key": secret}}))
        await ws.receive()
        await ws.send_str(json.dumps({"action": "listen", "data": {"streams": ["trade_updates"]}}))
        await ws.receive()
        print("listening", file=sys.stderr, flush=True)
        async for message in ws:
            if message.type not in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT):
                break
            payload = json.loads(message.data)
            if payload.get("stream") != "trade_updates":
                continue
            data = payload["data"]
            order = data["order"]
            out.write(
                json.dumps(
                    {
                        "type": "trade_update",
                        "event": data["event"],
                        "order_id": order["id"],
                        "filled_qty": order["filled_qty"],
                        "timestamp": data["timestamp"],
                    },
                    separators=(",", ":"),
                )
                + "\n"
            )
            out.flush()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt, BrokenPipeError):
        asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3]))
