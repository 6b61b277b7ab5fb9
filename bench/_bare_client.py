"""The baseline of `bench/bars_throughput.py`: the least a bar consumer can do.

`python -m bench._bare_client WS_URL KEY SECRET SYMBOL...` connects to a
market-data stream with aiohttp, authenticates, subscribes to bars, then for
each frame only decodes the msgpack and writes each bar as the contract's
JSON line, flushed per line, exactly as `alpaca-cli stream bars -o json` does.
No SDK, no threads, no queue, no validation: whatever `stream bars` costs on
top of this is the price of the bridge and the CLI.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import sys

import aiohttp
import msgpack


def _number(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "null"
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


async def main(url: str, key: str, secret: str, symbols: list[str]) -> None:
    out = sys.stdout
    headers = {"Content-Type": "application/msgpack"}
    async with aiohttp.ClientSession() as session, session.ws_connect(url, headers=headers, max_msg_size=0) as ws:
        await ws.receive_bytes()  # [{"T":"success","msg":"connected"}]
        await ws.send_bytes(msgpack.packb({"action": "auth", "key": key, "secret": secret}))
        await ws.receive_bytes()
        await ws.send_bytes(msgpack.packb({"action": "subscribe", "bars": symbols}))
        print("subscribed", file=sys.stderr, flush=True)
        async for message in ws:
            if message.type != aiohttp.WSMsgType.BINARY:
                break
            for bar in msgpack.unpackb(message.data):
                if bar.get("T") != "b":
                    continue
                moment = bar["t"].to_datetime().isoformat().removesuffix("+00:00") + "Z"
                out.write(
                    f'{{"type":"bar","symbol":{json.dumps(bar["S"])},"t":"{moment}","o":{_number(bar["o"])},'
                    f'"h":{_number(bar["h"])},"l":{_number(bar["l"])},"c":{_number(bar["c"])},'
                    f'"v":{_number(bar["v"])},"n":{_number(bar.get("n"))},"vw":{_number(bar.get("vw"))},'
                    '"source":"stream","updated":false}\n'
                )
                out.flush()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt, BrokenPipeError):
        asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]))
