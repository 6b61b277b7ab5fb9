"""The order behind a `trade_update` line (`order_qty`, `order_type`, `limit_price`, `stop_price`)
and the status of every `cancel` line, `cancel --all`'s included."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from helpers import cli_env, json_lines, run_cli


def test_trade_update_lines_carry_the_order_and_cancel_all_lines_its_status(sandbox: Any, tmp_path: Path) -> None:
    env = cli_env(tmp_path, sandbox.url)
    sandbox.set_price("KO", 60)
    argv = ["submit", "KO", "buy", "--qty", "7", "--type", "limit", "--limit-price", "30", "--tif", "gtc"]
    waited = run_cli(*argv, "--wait", "--timeout", "1", "--sandbox", "-o", "json", env=env)
    assert waited.returncode == 124, waited.stderr  # still working when the wait ran out
    updates = [line for line in json_lines(waited.stdout) if line["type"] == "trade_update"]
    assert updates, waited.stdout
    for update in updates:
        assert update["order_qty"] == 7 and update["order_type"] == "limit"
        assert update["limit_price"] == 30 and update["stop_price"] is None
        assert update["qty"] is None  # the fill's own quantity: no fill yet

    run_cli("submit", "KO", "buy", "--qty", "2", "--type", "limit", "--limit-price", "31", "--sandbox", env=env)
    canceled = run_cli("cancel", "--all", "--yes", "--sandbox", "-o", "json", env=env)
    assert canceled.returncode == 0, canceled.stderr
    lines = json_lines(canceled.stdout)
    assert len(lines) == 2 and {line["symbol"] for line in lines} == {"KO"}
    assert all(line["type"] == "cancel" and line["ok"] and line["status"] == "canceled" for line in lines), lines
