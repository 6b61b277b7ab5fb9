"""`status` tells a stopped stream from a stale one; `--check` fails on stale streams (and on
stopped or missing ones that `--expect` names); a refused second `tail` leaves the running
tail's health file alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from helpers import cli_env, json_lines, run_cli, spawn_cli

from alpaca_cli import health


def _dead_pid() -> int:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    return gone.pid


def _write(state_dir: Path, stream: str, **fields: Any) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    record = {"stream": stream, "connected": False, "reconnects": 0, "written_at": time.time(), **fields}
    (state_dir / f"health-sandbox-{stream}.json").write_text(json.dumps(record))


def test_read_tells_running_stopped_and_stale(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALPACA_CLI_STATE_DIR", str(tmp_path))
    _write(tmp_path, "trade-updates", pid=os.getpid(), connected=True, stopped=False)
    assert health.read("sandbox", "trade-updates")["state"] == "running"  # type: ignore[index]
    _write(tmp_path, "trade-updates", pid=_dead_pid(), stopped=True)
    stopped = health.read("sandbox", "trade-updates")
    assert stopped is not None and stopped["state"] == "stopped" and stopped["stale"] is False
    _write(tmp_path, "trade-updates", pid=_dead_pid(), connected=True, stopped=False)
    crashed = health.read("sandbox", "trade-updates")
    assert crashed is not None and crashed["state"] == "stale" and crashed["stale"] is True
    _write(tmp_path, "trade-updates", pid=os.getpid(), connected=True, written_at=time.time() - 300)
    assert health.read("sandbox", "trade-updates")["state"] == "stale"  # type: ignore[index]


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
    path = Path(env["ALPACA_CLI_STATE_DIR"]) / "health-sandbox-trade-updates.json"
    first = spawn_cli("tail", "trade-updates", "--sandbox", "-o", "json", env=env)
    try:
        deadline = time.monotonic() + 20
        while not (path.exists() and '"mode":"live"' in path.read_text()):
            assert time.monotonic() < deadline, "the first tail never went live"
            time.sleep(0.2)
        second = run_cli("tail", "trade-updates", "--sandbox", "-o", "json", env=env, timeout=30)
        assert second.returncode == 5, second.stderr
        record = json.loads(path.read_text())
        assert record["pid"] == first.pid and record["stopped"] is False and record["connected"] is True
        check = run_cli("status", "--sandbox", "--check", "--expect", "trade-updates", "-o", "json", env=env)
        assert check.returncode == 0, check.stderr
        assert json.loads(check.stdout)["streams"]["trade-updates"]["state"] == "running"
    finally:
        first.terminate()
        out, _ = first.communicate(timeout=30)
    assert first.returncode == 0
    assert json_lines(out) == []
    assert json.loads(path.read_text())["stopped"] is True  # its own last word
