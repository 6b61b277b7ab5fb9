"""`status` tells a stopped stream from a stale one; `--check` fails on stale streams (and on
stopped or missing ones that `--expect` names); every process keeps its own health file, so a
refused second `tail` leaves the running tail's alone, and the files of dead processes are
cleaned up by the next process of the same stream."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from helpers import cli_env, health_record, json_lines, run_cli, spawn_cli

from alpaca_cli import health


def _dead_pid() -> int:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    return gone.pid


def _write(state_dir: Path, stream: str, **fields: Any) -> Path:
    state_dir.mkdir(parents=True, exist_ok=True)
    record = {"stream": stream, "connected": False, "reconnects": 0, "written_at": time.time(), **fields}
    path = state_dir / f"health-sandbox-{stream}-{record['pid']}.json"
    path.write_text(json.dumps(record))
    return path


def test_read_tells_running_stopped_and_stale(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALPACA_CLI_STATE_DIR", str(tmp_path))
    trade_updates = health.StreamName.trade_updates
    stopped_file = _write(tmp_path, "trade-updates", pid=_dead_pid(), stopped=True)
    stopped = health.read("sandbox", trade_updates)
    assert stopped is not None and stopped["state"] == "stopped" and stopped["stale"] is False
    crashed_file = _write(tmp_path, "trade-updates", pid=_dead_pid(), connected=True, stopped=False)
    crashed = health.read("sandbox", trade_updates)  # a crash speaks louder than a clean stop
    assert crashed is not None and crashed["state"] == "stale" and crashed["stale"] is True
    running_file = _write(tmp_path, "trade-updates", pid=os.getpid(), connected=True, stopped=False)
    assert health.read("sandbox", trade_updates)["state"] == "running"  # type: ignore[index]
    states = [r["state"] for r in health.read_all("sandbox")[trade_updates]]
    assert states == ["running", "stale", "stopped"]
    assert health.read_all("sandbox")[health.StreamName.market_data] == []
    _write(tmp_path, "trade-updates", pid=os.getpid(), connected=True, written_at=time.time() - 300)
    assert health.read("sandbox", trade_updates)["state"] == "stale"  # type: ignore[index]
    assert stopped_file.exists() and crashed_file.exists() and running_file.exists()


def test_a_starting_publisher_removes_the_files_of_dead_processes_of_its_stream_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALPACA_CLI_STATE_DIR", str(tmp_path))
    dead_stopped = _write(tmp_path, "trade-updates", pid=_dead_pid(), stopped=True)
    dead_crashed = _write(tmp_path, "trade-updates", pid=_dead_pid(), stopped=False)
    older = tmp_path / "health-sandbox-trade-updates.json"  # an older alpaca-cli's name, without a pid
    older.write_text(json.dumps({"stream": "trade-updates", "pid": _dead_pid(), "written_at": time.time()}))
    other_stream = _write(tmp_path, "market-data", pid=_dead_pid(), stopped=True)
    alive = _write(tmp_path, "trade-updates", pid=os.getppid(), connected=True, stopped=False)
    other_env = tmp_path / "health-paper-trade-updates-1.json"
    other_env.write_text("{}")
    warnings: list[str] = []

    async def publish() -> None:
        record = {"connected": True, "mode": "live"}
        async with health.Publisher("sandbox", health.StreamName.trade_updates, lambda: dict(record), warnings.append):
            mine = health.read_all("sandbox")[health.StreamName.trade_updates]
            assert [r["pid"] for r in mine] == [os.getppid()]  # this one's first write has not happened yet
            await asyncio.sleep(0.05)
            assert {r["pid"] for r in health.read_all("sandbox")[health.StreamName.trade_updates]} == {
                os.getpid(),
                os.getppid(),
            }

    asyncio.run(publish())
    assert not warnings
    assert not dead_stopped.exists() and not dead_crashed.exists() and not older.exists()
    assert other_stream.exists() and alive.exists() and other_env.exists()
    last = json.loads(health.health_path("sandbox", health.StreamName.trade_updates).read_text())
    assert last["stopped"] is True and last["connected"] is False and last["mode"] == "live"


@pytest.mark.timeout(30)
def test_a_change_told_as_the_run_ends_does_not_keep_the_publisher_alive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The wake and the cancel land in the same turn of the loop: Python 3.11's `wait_for` then
    # drops the cancel, and a publisher waiting with it never ended (nor the command).
    monkeypatch.setenv("ALPACA_CLI_STATE_DIR", str(tmp_path))

    async def publish_and_stop() -> None:
        publisher = health.Publisher("sandbox", health.StreamName.market_data, dict, lambda text: None)
        await publisher.__aenter__()
        await asyncio.sleep(0.3)  # its first write done: it waits for a change
        publisher.changed()
        async with asyncio.timeout(5):
            await publisher.__aexit__(None, None, None)

    for _ in range(3):
        asyncio.run(publish_and_stop())
    assert json.loads(health.health_path("sandbox", health.StreamName.market_data).read_text())["stopped"] is True


def test_a_health_file_behind_a_symlink_is_written_through_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALPACA_CLI_STATE_DIR", str(tmp_path / "state"))
    (tmp_path / "state").mkdir()
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text("{}")
    link = health.health_path("sandbox", health.StreamName.trade_updates)
    link.symlink_to(elsewhere)
    health.write("sandbox", health.StreamName.trade_updates, {"connected": True, "stopped": True})
    assert link.is_symlink()
    assert json.loads(elsewhere.read_text())["stopped"] is True


def test_status_check_on_stopped_and_stale_streams(sandbox: Any, tmp_path: Path) -> None:
    env = cli_env(tmp_path, sandbox.url)
    state_dir = Path(env["ALPACA_CLI_STATE_DIR"])
    _write(state_dir, "trade-updates", pid=_dead_pid(), stopped=True)
    stopped = run_cli("status", "--sandbox", "--check", "-o", "json", env=env)
    assert stopped.returncode == 0, stopped.stderr
    assert json.loads(stopped.stdout)["streams"]["trade-updates"]["state"] == "stopped"
    table = run_cli("status", "--sandbox", "-o", "table", env=env)
    assert "stopped" in table.stdout and "stale" not in table.stdout
    expected = run_cli("status", "--sandbox", "--check", "--expect", "trade-updates", "-o", "json", env=env)
    assert expected.returncode == 1
    assert "check failed: trade-updates stream is stopped" in expected.stderr
    missing = run_cli("status", "--sandbox", "--check", "--expect", "market-data", "-o", "json", env=env)
    assert missing.returncode == 1 and "market-data stream is not running" in missing.stderr

    _write(state_dir, "trade-updates", pid=_dead_pid(), connected=True, stopped=False)  # killed, never said so
    stale = run_cli("status", "--sandbox", "--check", "-o", "json", env=env)
    assert stale.returncode == 1
    assert json.loads(stale.stdout)["streams"]["trade-updates"]["state"] == "stale"
    assert "check failed: trade-updates stream is stale" in stale.stderr


@pytest.mark.timeout(90)
def test_a_refused_second_tail_leaves_the_running_tails_health_file_alone(sandbox: Any, tmp_path: Path) -> None:
    env = cli_env(tmp_path, sandbox.url)
    first = spawn_cli("tail", "trade-updates", "--sandbox", "-o", "json", env=env)
    try:
        deadline = time.monotonic() + 20
        while (health_record(env, "trade-updates", first.pid) or {}).get("mode") != "live":
            assert time.monotonic() < deadline, "the first tail never went live"
            time.sleep(0.1)
        second = run_cli("tail", "trade-updates", "--sandbox", "-o", "json", env=env, timeout=30)
        assert second.returncode == 5, second.stderr
        record = health_record(env, "trade-updates", first.pid)
        assert record is not None and record["stopped"] is False and record["connected"] is True
        check = run_cli("status", "--sandbox", "--check", "--expect", "trade-updates", "-o", "json", env=env)
        assert check.returncode == 0, check.stderr
        shown = json.loads(check.stdout)
        assert shown["streams"]["trade-updates"]["state"] == "running"
        assert shown["streams"]["trade-updates"]["pid"] == first.pid
        # The refused one said it stopped, and why, in a file of its own.
        assert sorted(p["state"] for p in shown["processes"]) == ["running", "stopped"]
        [stopped] = [p for p in shown["processes"] if p["state"] == "stopped"]
        refused = health_record(env, "trade-updates", stopped["pid"])
        assert refused is not None and "connection limit reached" in (refused["last_error"] or "")
    finally:
        first.terminate()
        out, _ = first.communicate(timeout=30)
    assert first.returncode == 0
    assert json_lines(out) == []
    last = health_record(env, "trade-updates", first.pid)
    assert last is not None and last["stopped"] is True  # its own last word
    after = run_cli("status", "--sandbox", "--check", "--expect", "trade-updates", "-o", "json", env=env)
    assert after.returncode == 1 and "trade-updates stream is stopped" in after.stderr


@pytest.mark.timeout(90)
def test_two_market_data_commands_keep_a_health_file_each_and_status_shows_both(sandbox: Any, tmp_path: Path) -> None:
    """One `stream bars` per feed may run at once (an account has one data connection per feed):
    neither overwrites the other's health, and `status` shows both, then both stopped."""
    env = cli_env(tmp_path, sandbox.url)
    feeds = {
        feed: spawn_cli("stream", "bars", "SPY", "--feed", feed, "--sandbox", "-o", "json", env=env)
        for feed in ("iex", "sip")
    }
    try:
        deadline = time.monotonic() + 30
        while not all((health_record(env, "market-data", p.pid) or {}).get("connected") for p in feeds.values()):
            assert time.monotonic() < deadline, "both streams never connected"
            time.sleep(0.1)
        shown = run_cli("status", "--sandbox", "--check", "--expect", "market-data", "-o", "json", env=env)
        assert shown.returncode == 0, shown.stderr
        processes = json.loads(shown.stdout)["processes"]
        running = {p["pid"]: p["feed"] for p in processes if p["stream"] == "market-data" and p["state"] == "running"}
        assert running == {p.pid: feed for feed, p in feeds.items()}
    finally:
        for process in feeds.values():
            process.terminate()
        codes = [process.wait(30) for process in feeds.values()]
        for process in feeds.values():
            process.communicate(timeout=10)
    assert codes == [0, 0]
    after = json.loads(run_cli("status", "--sandbox", "-o", "json", env=env).stdout)
    stopped = {p["pid"] for p in after["processes"] if p["stream"] == "market-data" and p["state"] == "stopped"}
    assert stopped == {p.pid for p in feeds.values()}
    assert after["streams"]["market-data"]["state"] == "stopped"


def test_the_publisher_writes_on_change_at_most_once_a_second_and_at_least_every_five(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The one cadence of every stream's health, in virtual time (`virtual_time.VirtualTimeLoop`)."""
    from virtual_time import VirtualTimeLoop

    written: list[tuple[float, bool]] = []

    async def inline(function: Any, *args: Any) -> Any:  # the write on the loop: its time is virtual
        return function(*args)

    def record_write(environment: str, stream: health.StreamName, record: dict[str, Any]) -> None:
        written.append((round(asyncio.get_running_loop().time(), 3), record["stopped"]))

    monkeypatch.setattr(asyncio, "to_thread", inline)
    monkeypatch.setattr(health, "write", record_write)
    monkeypatch.setattr(health, "_remove_dead", lambda environment, stream: None)

    async def scenario() -> None:
        publisher = health.Publisher("sandbox", health.StreamName.trade_updates, dict, lambda text: None)
        async with publisher:
            await asyncio.sleep(12)  # quiet: a write at 0, 5, 10
            for _ in range(50):  # a burst of changes within 0.5 s: one write for all of them
                publisher.changed()
                await asyncio.sleep(0.01)
            await asyncio.sleep(3)

    with asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:
        runner.run(scenario())
    assert written == [(0, False), (5, False), (10, False), (12, False), (13, False), (15.5, True)]
