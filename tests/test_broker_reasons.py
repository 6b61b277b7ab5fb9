"""A trade update carries the broker's reason when it gives one (Alpaca: a top-level `reason`
string of the event), in JSON and in the row's status; the sandbox gives one for its rejections."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helpers import cli_env, json_lines, run_cli

HALTED = "trading in the symbol is halted"


@pytest.mark.timeout(90)
def test_a_rejection_carries_the_brokers_reason_in_json_and_in_the_row(sandbox: Any, tmp_path: Path) -> None:
    sandbox.call(lambda: sandbox.sandbox.broker.halted.add("KO"))
    env = cli_env(tmp_path, sandbox.url)
    argv = ("submit", "KO", "buy", "--qty", "1", "--wait", "--timeout", "20", "--sandbox", "--yes")
    result = run_cli(*argv, "-o", "json", env=env)
    assert result.returncode == 1, result.stderr
    updates = [line for line in json_lines(result.stdout) if line["type"] == "trade_update"]
    assert [(u["event"], u["reason"]) for u in updates][-1] == ("rejected", HALTED)
    assert all(u["reason"] is None for u in updates[:-1])
    result = run_cli(*argv, "-o", "table", env=env)
    assert result.returncode == 1, result.stderr
    row = [line for line in result.stdout.splitlines() if " rejected " in line][-1]
    assert f"rejected: {HALTED}" in row, row
