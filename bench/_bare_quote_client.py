"""The baseline of `bench/quotes_throughput.py`: the least a quote consumer can do.

`python -m bench._bare_quote_client WS_URL KEY SECRET SYMBOL...` connects with
aiohttp, authenticates, subscribes to quotes, then for each frame only decodes
the msgpack and writes each quote as the contract's JSON line. No SDK, no
threads, no queue, no validation: whatever `stream quotes` costs on top of this
is the price of the bridge and the CLI.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys

import aiohttp
import msgpack

from bench._bare_client import _number


async def main(url: str, key: str, secret: str, symbols: list[str]) -> None:
    out = sys.stdout
    headers = {"Content-Type": "application/msgpack"}
    async with aiohttp.ClientSession() as session, session.ws_connect(url, headers=headers, max_msg_size=0) as ws:
        await ws.receive_bytes()  # [{"T":"success","msg":"connected"}]
        await ws.send_bytes(msgpack.packb({"action": "auth", "key": key, "secret": secret}))
        await ws.receive_bytes()
        await ws.send_bytes(msgpack.packb({"action": "subscribe", "quotes": symbols}))
        async for message in ws:
            if message.type != aiohttp.WSMsgType.BINARY:
                break
            lines = []
            for quote in msgpack.unpackb(message.data):
                if quote.get("T") != "q":
                    continue
                moment = quote["t"].to_datetime().isoformat().removesuffix("+00:00") + "Z"
                lines.append(
                    f'{{"type":"quote","symbol":{json.dumps(quote["S"])},"t":"{moment}",'
                    f'"bid":{_number(quote["bp"])},"bid_size":{_number(quote["bs"])},'
                    f'"ask":{_number(quote["ap"])},"ask_size":{_number(quote["as"])}}}\n'
                )
            out.writelines(lines)
            out.flush()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt, BrokenPipeError):
        asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]))
