"""`alpaca-cli stream bars` end to end: the real entry point as a subprocess, the sandbox as peer.

A reference client written here with `websockets` (no alpaca-py, no project
code) listens on the sandbox's other feed and records what the sandbox sent,
so the CLI's JSON can be compared value by value with the wire.
"""

from __future__ import annotations

import json
import math
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgpack
import pytest
from helpers import cli_env, json_lines, run_cli, spawn_cli
from hypothesis import given
from hypothesis import strategies as st
from websockets.sync.client import connect

from alpaca_cli import health
from alpaca_cli.domain import Bar
from alpaca_cli.output.records import BarLines

pytestmark = pytest.mark.timeout(60)
BAR_KEYS = ["type", "symbol", "t", "o", "h", "l", "c", "v", "n", "vw", "source", "updated"]


class Running:
    """A spawned CLI whose stdout lines are read by a thread (so a test can wait with a timeout)."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.strip():
                self.lines.put(json.loads(line))
        self.lines.put(None)

    def next(self, timeout: float = 10.0) -> dict[str, Any]:
        line = self.lines.get(timeout=timeout)
        assert line is not None, f"the CLI ended early: {self.stderr()}"
        return line

    def until(self, predicate: Any, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            line = self.next(max(0.01, deadline - time.monotonic()))
            if predicate(line):
                return line

    def stop(self, sig: int) -> tuple[int, float]:
        started = time.monotonic()
        self.process.send_signal(sig)
        code = self.process.wait(timeout=10)
        return code, time.monotonic() - started

    def stderr(self) -> str:
        if self.process.poll() is None:
            return "(still running)"
        assert self.process.stderr is not None
        return self.process.stderr.read()


@pytest.fixture
def env(sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    no_data_connections(sandbox)
    monkeypatch.setenv("ALPACA_CLI_STATE_DIR", str(tmp_path / "state"))
    return cli_env(tmp_path, sandbox.url)


@pytest.fixture
def spawned() -> Iterator[list[Running]]:
    """CLIs started by a test; killed afterwards if the test left them running."""
    started: list[Running] = []
    yield started
    for running in started:
        if running.process.poll() is None:
            running.process.kill()
            running.process.wait(5)


def spawn(spawned: list[Running], *args: str, env: dict[str, str]) -> Running:
    running = Running(spawn_cli("stream", "bars", *args, "--sandbox", env=env))
    spawned.append(running)
    return running


def no_data_connections(sandbox: Any, timeout: float = 10.0) -> None:
    """One data connection per feed: wait until the previous test's is gone."""
    deadline = time.monotonic() + timeout
    while sandbox.admin("GET", "/admin/streams")["data"]:
        assert time.monotonic() < deadline, "a data connection outlived its test"
        time.sleep(0.02)


class Reference:
    """Records every bar the sandbox sends on `/v2/sip`, decoded with msgpack alone."""

    def __init__(self, url: str, symbols: list[str]) -> None:
        self.bars: dict[tuple[str, datetime], dict[str, Any]] = {}
        self._stack = ExitStack()
        self._ws = self._stack.enter_context(
            connect(f"{url}/v2/sip", additional_headers={"Content-Type": "application/msgpack"})
        )
        assert msgpack.unpackb(self._ws.recv())[0]["msg"] == "connected"
        self._ws.send(msgpack.packb({"action": "auth", "key": "SANDBOXKEY", "secret": "SANDBOXSECRET"}))
        assert msgpack.unpackb(self._ws.recv())[0]["msg"] == "authenticated"
        self._ws.send(msgpack.packb({"action": "subscribe", "bars": symbols}))
        assert msgpack.unpackb(self._ws.recv())[0]["T"] == "subscription"
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for frame in self._ws:
                for message in msgpack.unpackb(frame):
                    if message.get("T") == "b":
                        self.bars[(message["S"], message["t"].to_datetime())] = message
        except Exception:  # closed by close()
            return

    def close(self) -> None:
        self._stack.close()
        self._thread.join(5)


def ws_url(sandbox: Any) -> str:
    return "ws" + sandbox.url.removeprefix("http")


# ----------------------------------------------------------------------- output


def test_json_values_equal_what_the_sandbox_sent(sandbox: Any, env: dict[str, str]) -> None:
    reference = Reference(ws_url(sandbox), ["AAPL", "MSFT"])
    try:
        result = run_cli("stream", "bars", "AAPL", "msft", "--sandbox", "--count", "6", env=env, timeout=30)
        assert result.returncode == 0, result.stderr
        lines = json_lines(result.stdout)
        deadline = time.monotonic() + 5
        last = datetime.fromisoformat(lines[-1]["t"])
        while (lines[-1]["symbol"], last) not in reference.bars and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        reference.close()
    assert len(lines) == 6
    for line in lines:
        assert list(line) == BAR_KEYS and line["type"] == "bar"
        assert line["t"].endswith("Z")
        sent = reference.bars[(line["symbol"], datetime.fromisoformat(line["t"]))]
        assert [line[k] for k in ("o", "h", "l", "c", "v", "n", "vw")] == [
            sent[k] for k in ("o", "h", "l", "c", "v", "n", "vw")
        ]
    assert {line["symbol"] for line in lines} == {"AAPL", "MSFT"}
    assert result.stderr.strip().splitlines() == ["market-data stream connected (feed iex, 2 symbol(s))"]


def test_count_and_duration_stop_cleanly(sandbox: Any, env: dict[str, str]) -> None:
    counted = run_cli("stream", "bars", "SPY", "--sandbox", "--count", "2", "-o", "json", env=env, timeout=30)
    assert counted.returncode == 0, counted.stderr
    assert [line["symbol"] for line in json_lines(counted.stdout)] == ["SPY", "SPY"]

    no_data_connections(sandbox)
    started = time.monotonic()
    timed = run_cli("stream", "bars", "SPY", "--sandbox", "--duration", "1.5", env=env, timeout=30)
    assert timed.returncode == 0, timed.stderr
    assert 1.5 <= time.monotonic() - started < 10
    assert all(line["type"] == "bar" for line in json_lines(timed.stdout))
    record = health.read("sandbox", "market-data")
    assert record is not None and record["stopped"] is True and record["connected"] is False


def test_table_mode_shows_one_row_per_symbol_and_the_health_footer(sandbox: Any, env: dict[str, str]) -> None:
    result = run_cli("stream", "bars", "AAPL", "TSLA", "--sandbox", "--count", "4", "-o", "table", env=env, timeout=30)
    assert result.returncode == 0, result.stderr
    assert "AAPL" in result.stdout and "TSLA" in result.stdout
    assert "reconnects 0" in result.stdout and "dropped 0" in result.stdout


def test_a_bad_symbol_is_a_usage_error(env: dict[str, str]) -> None:
    result = run_cli("stream", "bars", "AA PL;", "--sandbox", env=env)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "not a symbol" in result.stderr


# ------------------------------------------------------------------- lifecycle


def test_survives_a_dropped_connection_and_reports_it(
    sandbox: Any, env: dict[str, str], spawned: list[Running]
) -> None:
    running = spawn(spawned, "AAPL", "--events", "-o", "json", env=env)
    first = running.next()
    assert first == {**first, "type": "stream", "stream": "market-data", "event": "connected", "reconnects": 0}
    running.until(lambda line: line["type"] == "bar")
    live = health.read("sandbox", "market-data")
    assert live is not None and live["connected"] is True and live["stale"] is False

    sandbox.admin("POST", "/admin/drop", {"stream": "data"})
    lost = running.until(lambda line: line["type"] == "stream")
    assert lost["event"] == "disconnected" and lost["reason"]
    back = running.until(lambda line: line["type"] == "stream")
    assert back["event"] == "connected" and back["reconnects"] == 1
    after = running.until(lambda line: line["type"] == "bar")  # re-subscribed, still printing
    assert after["symbol"] == "AAPL"

    code, took = running.stop(signal.SIGTERM)
    assert code == 0 and took < 5
    stderr = running.stderr().splitlines()
    assert any("disconnected" in line for line in stderr)
    assert any("reconnected (reconnect 1)" in line for line in stderr)
    record = health.read("sandbox", "market-data")
    assert record is not None and record["reconnects"] == 1 and record["stopped"] is True


def test_sigint_stops_within_five_seconds_with_130(env: dict[str, str], spawned: list[Running]) -> None:
    running = spawn(spawned, "MSFT", "-o", "json", env=env)
    running.until(lambda line: line["type"] == "bar")
    code, took = running.stop(signal.SIGINT)
    assert code == 130 and took < 5
    assert "Traceback" not in running.stderr()


def test_the_reader_going_away_ends_the_stream_quietly(env: dict[str, str], spawned: list[Running]) -> None:
    process = spawn_cli("stream", "bars", "AAPL", "--sandbox", "-o", "json", env=env)
    assert process.stdout is not None and process.stderr is not None
    assert json.loads(process.stdout.readline())["type"] == "bar"
    process.stdout.close()  # like `| head -1`
    try:
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
    assert "Traceback" not in process.stderr.read()


# ------------------------------------------------------------------- fail fast


def test_refused_auth_exits_3_fast_with_one_line(sandbox: Any, env: dict[str, str]) -> None:
    sandbox.set_faults(refuse_auth=True)
    started = time.monotonic()
    result = run_cli("stream", "bars", "AAPL", "--sandbox", env=env, timeout=30)
    assert result.returncode == 3
    assert time.monotonic() - started < 15
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "refused the credentials" in lines[0], result.stderr
    assert result.stdout == ""


def test_connection_limit_exits_5_fast_with_one_line(env: dict[str, str], spawned: list[Running]) -> None:
    holder = spawn(spawned, "AAPL", "-o", "json", env=env)
    holder.until(lambda line: line["type"] == "bar")
    started = time.monotonic()
    result = run_cli("stream", "bars", "AAPL", "--sandbox", env=env, timeout=30)
    assert result.returncode == 5
    assert time.monotonic() - started < 15
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "another process" in lines[0], result.stderr
    assert holder.stop(signal.SIGTERM)[0] == 0


# ------------------------------------------------------------------ JSON lines

finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


@given(
    symbol=st.text(min_size=1, max_size=8),
    moment=st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)),
    prices=st.lists(finite, min_size=4, max_size=4),
    volume=finite,
    count=st.none() | finite,
    vwap=st.none() | finite | st.sampled_from([math.inf, math.nan]),
)
def test_bar_lines_are_the_contract_json(
    symbol: str,
    moment: datetime,
    prices: list[float],
    volume: float,
    count: float | None,
    vwap: float | None,
) -> None:
    bar = Bar(symbol, moment, *prices, volume=volume, trade_count=count, vwap=vwap)
    format_line = BarLines()
    text = format_line(bar)
    assert text.endswith("\n") and text.count("\n") == 1
    line = json.loads(text)
    assert list(line) == BAR_KEYS
    assert line["symbol"] == symbol and datetime.fromisoformat(line["t"]) == moment
    assert [line[k] for k in ("o", "h", "l", "c", "v")] == [*prices, volume]
    assert line["n"] == count
    assert line["vw"] == (vwap if vwap is None or math.isfinite(vwap) else None)
    assert (line["source"], line["updated"]) == ("stream", False)
    assert format_line(bar) == text  # the cached symbol and time give the same line
