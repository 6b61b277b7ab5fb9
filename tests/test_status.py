"""`alpaca-cli status` end to end: the real entry point, the real SDK, the sandbox."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from tests.helpers import cli_env, json_lines, run_cli

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def holdings(sandbox) -> None:
    """One filled position and one resting limit order to report on."""
    sandbox.reset()
    sandbox.set_price("AAPL", "100")
    from alpaca.trading.client import TradingClient
    from alpaca.trading.requests import LimitOrderRequest, MarketOrderRequest

    client = TradingClient(sandbox.key_id, sandbox.secret_key, paper=True, url_override=sandbox.url)
    client.submit_order(MarketOrderRequest(symbol="AAPL", qty=5, side="buy", time_in_force="day"))
    client.submit_order(LimitOrderRequest(symbol="MSFT", qty=2, side="buy", time_in_force="gtc", limit_price=1))
    deadline = time.monotonic() + 10
    while not client.get_all_positions():
        assert time.monotonic() < deadline, "the market order never filled"
        sandbox.step()


def test_json_status_is_one_object(sandbox, holdings, tmp_path: Path) -> None:
    result = run_cli("status", "--sandbox", "-o", "json", "--positions", "--orders", env=cli_env(tmp_path, sandbox.url))
    assert result.returncode == 0, result.stderr
    (record,) = json_lines(result.stdout)
    assert record["type"] == "status"
    assert record["environment"] == "sandbox"
    assert record["account"]["status"] == "ACTIVE"
    assert record["clock"]["is_open"] is True
    assert record["positions"]["count"] == 1
    (position,) = record["positions"]["rows"]
    assert (position["symbol"], position["qty"], position["side"]) == ("AAPL", 5, "long")
    assert [o["symbol"] for o in record["orders"]["rows"]] == ["MSFT"]
    assert record["streams"] == {"market-data": None, "trade-updates": None}


def test_table_status_renders_panels(sandbox, holdings, tmp_path: Path) -> None:
    result = run_cli("status", "--sandbox", "-o", "table", "--positions", env=cli_env(tmp_path, sandbox.url))
    assert result.returncode == 0, result.stderr
    assert "Account · sandbox" in result.stdout
    assert "AAPL" in result.stdout and "open orders" in result.stdout
    assert "market" in result.stdout and "not running" in result.stdout


def test_piped_output_defaults_to_json(sandbox, holdings, tmp_path: Path) -> None:
    result = run_cli("status", "--sandbox", env=cli_env(tmp_path, sandbox.url))
    assert json_lines(result.stdout)[0]["type"] == "status"


def test_bad_key_is_exit_3_with_one_line(sandbox, tmp_path: Path) -> None:
    env = cli_env(
        tmp_path,
        APCA_API_KEY_ID="WRONG",
        APCA_API_SECRET_KEY="also-wrong-secret",
        APCA_API_BASE_URL=sandbox.url,
    )
    result = run_cli("status", "--debug", env=env)
    assert result.returncode == 3
    assert result.stdout == ""
    errors = [line for line in result.stderr.splitlines() if line.startswith("alpaca-cli: error:")]
    assert len(errors) == 1 and "refused the credentials" in errors[0]
    assert "also-wrong-secret" not in result.stderr  # not even with --debug


def test_sandbox_down_is_exit_4_quickly(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.monotonic()
    result = run_cli("status", "--sandbox", env=cli_env(tmp_path, f"http://127.0.0.1:{port}"))
    elapsed = time.monotonic() - started
    assert result.returncode == 4, result.stderr
    assert result.stderr.count("\n") == 1 and f"cannot reach 127.0.0.1:{port}" in result.stderr
    assert "alpaca-cli sandbox serve" in result.stderr
    assert elapsed < 5, f"took {elapsed:.1f}s"


def test_missing_credentials_is_a_usage_error(tmp_path: Path) -> None:
    result = run_cli("status", env=cli_env(tmp_path))
    assert result.returncode == 2
    assert "no API credentials" in result.stderr and result.stderr.count("\n") == 1


def test_secret_from_profile_never_printed_with_debug(sandbox, tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(
        f'[default]\nkey_id = "SANDBOXKEY"\nsecret_key = "SANDBOXSECRET"\nbase_url = "{sandbox.url}"\n',
        encoding="utf-8",
    )
    result = run_cli("status", "--debug", "-o", "json", env=cli_env(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "SANDBOXSECRET" not in result.stdout + result.stderr


def test_a_long_order_book_draws_the_newest_rows_and_counts_the_rest(sandbox, tmp_path: Path) -> None:
    """10,000 rows on a terminal took longer than the command; JSON still lists them all."""
    sandbox.reset()
    sandbox.admin("POST", "/admin/seed", {"open_orders": 120, "positions": 0})
    env = cli_env(tmp_path, sandbox.url)
    table = run_cli("status", "--sandbox", "-o", "table", "--orders", env=env)
    assert table.returncode == 0, table.stderr
    assert "Open orders (120)" in table.stdout and "… and 70 older not shown" in table.stdout
    assert sum(" buy " in line or " sell " in line for line in table.stdout.splitlines()) == 50
    (record,) = json_lines(run_cli("status", "--sandbox", "-o", "json", "--orders", env=env).stdout)
    assert record["orders"]["count"] == 120 and len(record["orders"]["rows"]) == 120
