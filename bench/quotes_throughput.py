"""Quotes throughput of `alpaca-cli stream quotes -o json` into a pipe, against a bare client.

A quote-only feed (`bench/_quote_feed.py`, its own process: the sandbox's quotes
follow its price walk and come too slowly to load anyone) serves two
consumers at once, each in its own process writing JSON lines into a pipe
this benchmark reads:

- `alpaca-cli stream quotes -o json` on the iex feed, 100 symbols, through the
  SDK, the bridge's thread and queue, and the gap-free stream command;
- the baseline, `bench/_bare_quote_client.py` (aiohttp + msgpack, no SDK) on
  the sip feed, 100 other symbols, writing the same lines.

Each round sends a 10,000-quote burst (frames of 1,000, as Alpaca batches) to
one consumer, then to the other, so they never compete for the CPU. The rate
(`quotes_per_s`, median of the rounds; the ratio is taken on it) is quotes /
(time from the burst request to the last line read). The target is 0.8x the
bare client. The CLI must drop nothing (its health file counts drops).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench import alpaca_cli, cli_env, free_port, stop_process, wait_until
from bench.bars_throughput import _Consumer

NAME = "quotes"
DESCRIPTION = "stream quotes -o json to a pipe vs a bare aiohttp+msgpack client; 10,000-quote bursts"
BURST = 10_000  # the bridge's queue holds 10,000: a burst the CLI keeps whole however slow it is
ROUNDS = 7
WATCHLIST = 100
RATIO_TARGET = 0.8
BASELINE = "bare aiohttp+msgpack client (baseline)"
CLI_CASE = "alpaca-cli stream quotes -o json"
KEY, SECRET = "BENCHKEY", "BENCHSECRET"


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as reply:
        return json.load(reply)


def _round(feed_url: str, feed: str, consumer: _Consumer) -> float:
    consumer.expect(consumer.lines + BURST)
    started = time.perf_counter()
    request = urllib.request.Request(f"{feed_url}/burst?feed={feed}&count={BURST}", method="POST")
    with urllib.request.urlopen(request, timeout=120):
        pass
    consumer.wait(120)
    return BURST / (consumer.reached_at - started)


def run() -> list[dict[str, Any]]:
    port = free_port()
    feed_url = f"http://127.0.0.1:{port}"
    root = Path(__file__).resolve().parent.parent
    feed = subprocess.Popen(
        [sys.executable, "-m", "bench._quote_feed", str(port)],
        cwd=root,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    with tempfile.TemporaryDirectory(prefix="alpaca-cli-bench-") as home:
        env = cli_env(
            Path(home),
            APCA_API_KEY_ID=KEY,
            APCA_API_SECRET_KEY=SECRET,
            APCA_API_DATA_STREAM_URL=f"ws://127.0.0.1:{port}",
        )
        try:
            wait_until(lambda: _reachable(feed_url), 20, "the quote feed")
            mine = [f"Q{i:03d}" for i in range(WATCHLIST)]
            theirs = [f"R{i:03d}" for i in range(WATCHLIST)]
            tool = _Consumer([alpaca_cli(), "stream", "quotes", *mine, "-o", "json", "--stale-after", "0"], env)
            sip = f"ws://127.0.0.1:{port}/v2/sip"
            bare_argv = [sys.executable, "-m", "bench._bare_quote_client", sip, KEY, SECRET, *theirs]
            bare = _Consumer(bare_argv, {**env, "PYTHONPATH": str(root)})
            try:
                wait_until(lambda: _get(f"{feed_url}/subscribed") == {"iex": WATCHLIST, "sip": WATCHLIST}, 30, "both")
                rates: dict[str, list[float]] = {CLI_CASE: [], BASELINE: []}
                for _ in range(ROUNDS):
                    rates[CLI_CASE].append(_round(feed_url, "iex", tool))
                    rates[BASELINE].append(_round(feed_url, "sip", bare))
                same_shape = tool.first_line is not None and list(tool.first_line) == list(bare.first_line or {})
            finally:
                if tool.stop() != 0:
                    raise RuntimeError("stream quotes did not exit 0 on SIGTERM")
                bare.stop()
            (written,) = (Path(home) / "state").glob("health-paper-market-data-*.json")  # the one process's
            health = json.loads(written.read_text())
        finally:
            stop_process(feed)

    def median(case: str) -> dict[str, Any]:
        ordered = sorted(rates[case])
        return {"quotes_per_s": round(ordered[len(ordered) // 2]), "min_per_s": round(ordered[0])}

    tool_rate, bare_rate = median(CLI_CASE), median(BASELINE)
    return [
        {"case": BASELINE, "bursts": ROUNDS, "burst_quotes": BURST, **bare_rate},
        {
            "case": CLI_CASE,
            "bursts": ROUNDS,
            "burst_quotes": BURST,
            **tool_rate,
            "dropped": health["dropped_quotes"],
            "received": health["items_received"],
            "same_json_keys": "yes" if same_shape else "NO",
            "baseline": BASELINE,
            "metric": "quotes_per_s",
            "meets": "yes" if tool_rate["quotes_per_s"] >= RATIO_TARGET * bare_rate["quotes_per_s"] else "NO",
        },
    ]


def _reachable(url: str) -> bool:
    try:
        _get(f"{url}/subscribed")
    except OSError:
        return False
    return True
