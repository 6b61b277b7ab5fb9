"""`submit --wait` while `tail` holds the account's one trade stream: it polls without a warning
and prints its updates exactly as `tail` does."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
from helpers import cli_env, health_record, run_cli, spawn_cli

ROW = re.compile(r"^\d\d:\d\d:\d\d +ON +buy +(\S+)( [\d.]+ @ [\d.]+)? +[\d.]+/5 +\S+ +reconcile$")


@pytest.mark.timeout(90)
def test_wait_beside_a_running_tail_polls_quietly_and_prints_tail_rows(sandbox: Any, tmp_path: Path) -> None:
    env = cli_env(tmp_path, sandbox.url, COLUMNS="80")
    tail = spawn_cli("tail", "trade-updates", "--sandbox", "-o", "json", env=env)
    try:
        deadline = time.monotonic() + 20
        while (health_record(env, "trade-updates", tail.pid) or {}).get("mode") != "live":
            assert time.monotonic() < deadline, "tail never went live"
            time.sleep(0.2)
        sandbox.set_price("ON", 30)
        argv = ("submit", "ON", "buy", "--qty", "5", "--wait", "--timeout", "20", "--sandbox", "-o", "table")
        result = run_cli(*argv, env=env)
    finally:
        tail.terminate()
        tail.communicate(timeout=30)
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr
    assert "holds this account's trade-update stream; polling the order" in result.stderr
    rows = [line.rstrip() for line in result.stdout.splitlines() if re.match(r"^\d\d:\d\d:\d\d ", line)]
    assert rows, result.stdout
    for row in rows:
        assert len(row) <= 80 and ROW.match(row), row
    assert ROW.match(rows[-1]).group(1) == "fill"  # type: ignore[union-attr]
