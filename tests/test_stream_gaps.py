"""Gap-free `stream bars` end to end: the sandbox loses bars on purpose, the output has them all.

The sandbox streams 0.5 s bars, and its historical `1Min` bars are those same
bars (docs/sandbox-market-data.md), so a gap of several bar intervals happens
in seconds. The truth each test compares with is the sandbox's own history,
read with `requests` (not through the tool).
"""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from helpers import cli_env, health_record, spawn_cli

pytestmark = pytest.mark.timeout(90)
SYMBOLS = ("AAPL", "MSFT")


class Running:
    """A spawned `stream bars` whose JSON lines a thread collects."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: list[dict[str, Any]] = []
        self._new: queue.Queue[dict[str, Any] | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for text in self.process.stdout:
            if text.strip():
                line = json.loads(text)
                self.lines.append(line)
                self._new.put(line)
        self._new.put(None)

    def bars(self, n: int, timeout: float = 20.0, **fields: Any) -> None:
        """Wait for `n` more bar lines (with these field values)."""
        deadline = time.monotonic() + timeout
        while n > 0:
            line = self._new.get(timeout=max(0.01, deadline - time.monotonic()))
            assert line is not None, self.stderr()
            if line["type"] == "bar" and all(line.get(k) == v for k, v in fields.items()):
                n -= 1

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=10)

    def stderr(self) -> str:
        assert self.process.stderr is not None
        return self.process.stderr.read() if self.process.poll() is not None else "(running)"


@pytest.fixture
def env(sandbox: Any, tmp_path: Path) -> dict[str, str]:
    deadline = time.monotonic() + 10
    while sandbox.admin("GET", "/admin/streams")["data"]:  # one data connection per feed
        assert time.monotonic() < deadline, "a data connection outlived its test"
        time.sleep(0.02)
    return cli_env(tmp_path, sandbox.url)


@pytest.fixture
def spawned() -> Iterator[list[Running]]:
    started: list[Running] = []
    yield started
    for running in started:
        if running.process.poll() is None:
            running.process.kill()
            running.process.wait(5)


def stream(spawned: list[Running], env: dict[str, str], *args: str) -> Running:
    running = Running(spawn_cli("stream", "bars", *SYMBOLS, *args, "--sandbox", "-o", "json", env=env))
    spawned.append(running)
    return running


def history(sandbox: Any, start: datetime, end: datetime) -> set[tuple[str, datetime]]:
    """(symbol, t) of every 1Min bar the sandbox's historical API has from start to end, inclusive."""
    found: set[tuple[str, datetime]] = set()
    params: dict[str, Any] = {
        "symbols": ",".join(SYMBOLS),
        "timeframe": "1Min",
        "start": start.isoformat(),
        "end": end.isoformat(),
        "limit": 10000,
        "feed": "iex",
    }
    headers = {"APCA-API-KEY-ID": sandbox.key_id, "APCA-API-SECRET-KEY": sandbox.secret_key}
    while True:
        page = requests.get(f"{sandbox.url}/v2/stocks/bars", params=params, headers=headers, timeout=10).json()
        for symbol, items in (page.get("bars") or {}).items():
            found |= {(symbol, datetime.fromisoformat(item["t"])) for item in items}
        if not page.get("next_page_token"):
            return found
        params["page_token"] = page["next_page_token"]


def bars_of(lines: list[dict[str, Any]]) -> list[tuple[str, datetime, str]]:
    """(symbol, t, source) of the bar lines that are not corrections, in output order."""
    return [
        (line["symbol"], datetime.fromisoformat(line["t"]), line["source"])
        for line in lines
        if line["type"] == "bar" and not line["updated"]
    ]


def assert_complete(sandbox: Any, bars: list[tuple[str, datetime, str]]) -> None:
    """Every (symbol, t) once, in order per symbol, and exactly the history between the first and the last."""
    for symbol in SYMBOLS:
        times = [t for s, t, _ in bars if s == symbol]
        assert times == sorted(set(times)), f"{symbol}: a bar twice or out of order"
    start = min(t for _, t, _ in bars)
    end = max(t for _, t, _ in bars)
    expected = history(sandbox, start, end)
    printed = {(s, t) for s, t, _ in bars}
    assert printed == expected, f"missing {sorted(expected - printed)[:5]}, extra {sorted(printed - expected)[:5]}"


def test_bars_missed_while_the_stream_was_cut_are_backfilled_once_in_order(
    sandbox: Any, env: dict[str, str], spawned: list[Running]
) -> None:
    requests_before = dict(sandbox.counts).get("GET /v2/stocks/bars", 0)
    running = stream(spawned, env)
    running.bars(4, source="stream")
    for _ in range(2):
        # Reconnecting takes the SDK about a second: two bar intervals or more are made meanwhile.
        sandbox.admin("POST", "/admin/drop", {"stream": "data"})
        running.bars(len(SYMBOLS), source="backfill")
        running.bars(4, source="stream")
    assert running.stop() == 0
    fetched = dict(sandbox.counts).get("GET /v2/stocks/bars", 0) - requests_before
    bars = bars_of(running.lines)
    assert_complete(sandbox, bars)
    assert sum(1 for *_, source in bars if source == "backfill") >= 2 * len(SYMBOLS)
    record = health_record(env, "market-data")
    assert record is not None and record["backfills"] >= 2 and record["backfill_failures"] == 0
    assert record["backfilled_bars"] == sum(1 for *_, source in bars if source == "backfill")
    # One request per gap for both symbols (a gap of a few bars is one page), never one per symbol.
    assert fetched == record["backfills"]


def test_a_mute_socket_is_replaced_and_its_silence_backfilled(
    sandbox: Any, env: dict[str, str], spawned: list[Running]
) -> None:
    running = stream(spawned, env, "--stale-after", "1")
    running.bars(4, source="stream")
    sandbox.set_faults(mute_data=True)  # the socket stays open and says nothing
    time.sleep(2.5)
    sandbox.set_faults(mute_data=False)
    running.bars(2, source="backfill")
    running.bars(4, source="stream")
    assert running.stop() == 0
    assert_complete(sandbox, bars_of(running.lines))


def test_since_restarts_where_the_last_run_stopped_without_a_hole(
    sandbox: Any, env: dict[str, str], spawned: list[Running]
) -> None:
    first = stream(spawned, env)
    first.bars(6)
    assert first.stop() == 0
    last = max(t for _, t, _ in bars_of(first.lines))
    time.sleep(2.0)  # the bars of these four intervals are made while nothing runs
    second = stream(spawned, env, "--since", last.isoformat())
    second.bars(8, source="stream")
    assert second.stop() == 0
    again = bars_of(second.lines)
    assert min(t for _, t, _ in again) == last  # --since is inclusive
    assert any(source == "backfill" and t > last + timedelta(seconds=1) for _, t, source in again)
    assert_complete(sandbox, [bar for bar in bars_of(first.lines) if bar[1] < last] + again)


def test_a_corrected_bar_is_printed_again_as_updated(sandbox: Any, env: dict[str, str], spawned: list[Running]) -> None:
    running = stream(spawned, env)
    running.bars(2, source="stream")
    sandbox.set_faults(correct_bars_after=0.1)  # a late print joins each bar; Alpaca sends `updatedBars`
    running.bars(2, updated=True)
    assert running.stop() == 0
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    corrections = 0
    for line in (line for line in running.lines if line["type"] == "bar"):
        key = (line["symbol"], line["t"])
        if line["updated"]:
            assert key in seen, "a correction of a bar never printed"
            assert line["source"] == "stream" and line != seen[key]
            corrections += 1
        else:
            assert key not in seen, "a bar printed twice"
            seen[key] = line
    assert corrections >= 2
