"""Bars throughput of `alpaca-cli stream bars -o json` into a pipe, against a bare client.

One sandbox process (`sandbox serve`, bar interval one hour so only bursts
count, market closed so the price walk stays idle) serves two consumers at
once, each in its own process writing JSON lines into a pipe this benchmark
reads:

- `alpaca-cli stream bars -o json` on the iex feed, subscribed to 500 symbols;
- the baseline, `bench/_bare_client.py` (aiohttp + msgpack, no SDK) on the sip
  feed, subscribed to 500 other symbols.

Each round sends a 10,000-bar burst (`POST /admin/burst`, a minute boundary
on a 500-symbol watchlist, 20 bars a symbol) to one consumer, then to the
other, so they never compete for the CPU and drift hits both alike. The
rate (`bars_per_s`, median of the rounds; the ratio is taken on it) is bars /
(time from the burst request to the last line read), which includes the
sandbox building and sending the burst; `first_to_last_per_s` leaves that
out. The CLI must drop nothing (its health file counts drops).

Last, a fresh `stream bars` whose pipe nobody reads gets a 40,000-bar burst:
the bar queue fills (10,000) and the rest is dropped, and its peak RSS
(VmHWM of the process itself) must stay under 150 MB.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from bench import SandboxProcess, admin, alpaca_cli, stop_process, wait_until

NAME = "bars"
DESCRIPTION = "stream bars -o json to a pipe vs a bare aiohttp+msgpack client; 10,000-bar bursts; RSS with queue full"
BURST = 10_000
ROUNDS = 5
WATCHLIST = 500
FLOOD = 40_000
RSS_TARGET_MB = 150.0
RATIO_TARGET = 0.8  # issue 12, with no bar dropped
BASELINE = "bare aiohttp+msgpack client (baseline)"
CLI_CASE = "alpaca-cli stream bars -o json"


def _symbols(prefix: str) -> list[str]:
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return [prefix + "".join(pair) for pair in itertools.islice(itertools.product(letters, repeat=2), WATCHLIST)]


def _subscribed(url: str, feed: str, count: int) -> bool:
    for conn in admin(url, "GET", "/admin/streams")["data"]:
        if conn.get("feed") == feed and len(conn.get("subscriptions", {}).get("bars", [])) == count:
            return True
    return False


def _peak_rss_mb(pid: int) -> float:
    """VmHWM: the process's own high-water mark (a fresh address space since its exec)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError("no VmHWM in /proc")


class _Consumer:
    """A child process writing JSON lines to a pipe; a thread counts them as they arrive."""

    def __init__(self, argv: Sequence[str], env: dict[str, str], *, read: bool = True) -> None:
        self.process = subprocess.Popen(
            list(argv), env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        self.lines = 0
        self.first_line: dict[str, Any] | None = None
        self._target = 0
        self._start = 0
        self._reached = threading.Event()
        self.first_at = 0.0
        self.reached_at = 0.0
        if read:
            threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        stdout: IO[bytes] | None = self.process.stdout
        assert stdout is not None
        for line in stdout:
            if self.first_line is None:
                self.first_line = json.loads(line)
            self.lines += 1
            if self.lines == self._start + 1:
                self.first_at = time.perf_counter()
            if self.lines >= self._target and not self._reached.is_set():
                self.reached_at = time.perf_counter()
                self._reached.set()

    def expect(self, total: int) -> None:
        self._reached.clear()
        self._start = self.lines
        self._target = total
        if self.lines >= total:
            self.reached_at = time.perf_counter()
            self._reached.set()

    def wait(self, timeout: float) -> None:
        if not self._reached.wait(timeout):
            raise RuntimeError(f"only {self.lines} of {self._target} lines arrived")

    def stop(self) -> int:
        return stop_process(self.process)


def _round(url: str, consumer: _Consumer, symbols: list[str]) -> tuple[float, float]:
    """Bars per second of one burst: from the request, and from the first line, to the last line read."""
    consumer.expect(consumer.lines + BURST)
    started = time.perf_counter()
    reply = admin(url, "POST", "/admin/burst", {"count": BURST, "symbols": symbols})
    if reply["delivered"] != BURST:
        raise RuntimeError(f"the sandbox delivered {reply['delivered']} of {BURST} bars")
    consumer.wait(120)
    return BURST / (consumer.reached_at - started), (BURST - 1) / (consumer.reached_at - consumer.first_at)


def _health(home: Path) -> dict[str, Any]:
    paths = sorted((home / "state").glob("health-sandbox-market-data-*.json"), key=lambda p: p.stat().st_mtime)
    return json.loads(paths[-1].read_text())  # the `stream bars` that ran last


def run() -> list[dict[str, Any]]:
    cli = alpaca_cli()
    mine, theirs = _symbols("X"), _symbols("Y")
    with SandboxProcess("--bar-interval", "3600", "--market-closed", "--tick-interval", "1") as sandbox:
        url = sandbox.url
        ws = "ws" + url.removeprefix("http")
        stream = [cli, "stream", "bars", *mine, "--sandbox", "-o", "json", "--stale-after", "0"]
        tool = _Consumer(stream, sandbox.env)
        bare = _Consumer(
            [sys.executable, "-m", "bench._bare_client", f"{ws}/v2/sip", "SANDBOXKEY", "SANDBOXSECRET", *theirs],
            {**sandbox.env, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
        )

        def both_subscribed() -> bool:
            return _subscribed(url, "iex", WATCHLIST) and _subscribed(url, "sip", WATCHLIST)

        wait_until(both_subscribed, 30, "subscriptions")
        rates: dict[str, list[tuple[float, float]]] = {CLI_CASE: [], BASELINE: []}
        for _ in range(ROUNDS):
            rates[CLI_CASE].append(_round(url, tool, mine))
            rates[BASELINE].append(_round(url, bare, theirs))
        tool_rss, bare_rss = _peak_rss_mb(tool.process.pid), _peak_rss_mb(bare.process.pid)
        same_shape = tool.first_line is not None and bare.first_line is not None
        same_shape = same_shape and list(tool.first_line or {}) == list(bare.first_line or {})
        if tool.stop() != 0:
            raise RuntimeError("stream bars did not exit 0 on SIGTERM")
        bare.stop()
        after = _health(sandbox.home)

        wait_until(lambda: not _subscribed(url, "iex", WATCHLIST), 10, "the first stream to go")
        stalled = _Consumer(stream, sandbox.env, read=False)
        wait_until(lambda: _subscribed(url, "iex", WATCHLIST), 30, "the stalled stream's subscription")
        admin(url, "POST", "/admin/burst", {"count": FLOOD, "symbols": mine})
        wait_until(lambda: _health(sandbox.home).get("items_received", 0) >= FLOOD, 30, "the flood to arrive")
        flood_rss = _peak_rss_mb(stalled.process.pid)
        stalled.stop()
        flooded = _health(sandbox.home)

    def best(case: str) -> dict[str, Any]:
        whole = sorted(r[0] for r in rates[case])
        streaming = sorted(r[1] for r in rates[case])
        return {
            "bars_per_s": round(whole[len(whole) // 2]),
            "min_per_s": round(whole[0]),
            "first_to_last_per_s": round(streaming[len(streaming) // 2]),
        }

    return [
        {"case": BASELINE, "bursts": ROUNDS, "burst_bars": BURST, **best(BASELINE), "peak_rss_mb": bare_rss},
        {
            "case": CLI_CASE,
            "bursts": ROUNDS,
            "burst_bars": BURST,
            **best(CLI_CASE),
            "peak_rss_mb": tool_rss,
            "dropped": after["dropped_bars"],
            "received": after["items_received"],
            "same_json_keys": "yes" if same_shape else "NO",
            "baseline": BASELINE,
            "metric": "bars_per_s",
            "meets": "yes"
            if best(CLI_CASE)["bars_per_s"] >= RATIO_TARGET * best(BASELINE)["bars_per_s"]
            and after["dropped_bars"] == 0
            else "NO",
        },
        {
            "case": f"stream bars, pipe not read, {FLOOD:,}-bar burst",
            "burst_bars": FLOOD,
            "received": flooded["items_received"],
            "queue_depth": flooded["queue_depth"],
            "dropped": flooded["dropped_bars"],
            "peak_rss_mb": flood_rss,
            "meets": "yes" if flood_rss < RSS_TARGET_MB else "NO",
        },
    ]
