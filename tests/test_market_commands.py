"""`activities`, `clock`, `calendar` and `assets` end to end: the real entry point against the sandbox."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest
from helpers import assert_refused_before_sending, cli_env, json_lines, run_cli, served

pytestmark = pytest.mark.timeout(120)

ACTIVITIES = "GET /v2/account/activities"


def cli(sandbox: Any, tmp_path: Path, *args: str) -> Any:
    return run_cli(*args, "--sandbox", env=cli_env(tmp_path, sandbox.url))


BAD_INPUTS: list[list[str]] = [
    ["activities", "--type", "FILLS"],
    ["activities", "--type", "FILL,,DIV"],
    ["activities", "--after", "last week"],
    ["activities", "--date", "2026-02-30"],
    ["activities", "--date", "2026-11-02", "--after", "2026-11-01"],
    ["activities", "--after", "2026-11-02", "--until", "2026-11-01"],
    ["activities", "-o", "xml"],
    ["calendar", "--start", "tomorrow"],
    ["calendar", "--start", "2026-12-01", "--end", "2026-11-01"],
    ["assets", "NOT A SYMBOL"],
    ["clock", "--bogus"],
]


@pytest.mark.parametrize("argv", BAD_INPUTS, ids=[f"bad{i}" for i in range(len(BAD_INPUTS))])
def test_bad_input_exits_2_with_one_line_and_sends_nothing(
    sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    assert_refused_before_sending(sandbox, tmp_path, monkeypatch, capfd, argv)


def test_activities_page_through_every_fill_and_write_csv(sandbox: Any, tmp_path: Path) -> None:
    sandbox.reset()
    body = {"symbol": "WMT", "qty": "1", "side": "buy", "type": "market", "time_in_force": "day"}
    for _ in range(130):
        sandbox.call(lambda: sandbox.broker.submit(dict(body)))
    for _ in range(50):
        sandbox.call(lambda: sandbox.broker.step())
        if sandbox.call(lambda: sandbox.broker.position_qty("WMT")) == 130:
            break
    before = served(sandbox, ACTIVITIES)
    result = cli(sandbox, tmp_path, "activities", "--type", "fill", "-o", "json")
    assert result.returncode == 0, result.stderr
    fills = json_lines(result.stdout)
    assert len(fills) == 130 and len({f["id"] for f in fills}) == 130
    assert all(f["type"] == "activity" and f["activity_type"] == "FILL" and f["symbol"] == "WMT" for f in fills)
    assert [f["time"] for f in fills] == sorted(f["time"] for f in fills)
    assert served(sandbox, ACTIVITIES) - before == 2  # 100 + 30

    every = json_lines(cli(sandbox, tmp_path, "activities", "-o", "json").stdout)
    assert [a["activity_type"] for a in every[:1]] == ["CSD"] and len(every) == 131

    table = cli(sandbox, tmp_path, "activities", "-o", "csv")
    assert table.returncode == 0, table.stderr
    rows = list(csv.DictReader(io.StringIO(table.stdout)))
    assert len(rows) == 131
    assert rows[0]["activity_type"] == "CSD" and rows[0]["net_amount"] == "100000"
    assert rows[1]["side"] == "buy" and rows[1]["qty"] == "1" and rows[1]["time"].endswith("Z")


def test_clock_calendar_and_assets(sandbox: Any, tmp_path: Path) -> None:
    [now] = json_lines(cli(sandbox, tmp_path, "clock", "-o", "json").stdout)
    assert now["type"] == "clock" and now["is_open"] is True
    assert {"timestamp", "next_open", "next_close"} <= set(now)

    days = json_lines(cli(sandbox, tmp_path, "calendar", "--start", "2026-12-21", "--end", "2026-12-31").stdout)
    dates = [d["date"] for d in days]
    assert "2026-12-25" not in dates and "2026-12-24" in dates  # Christmas closed, its eve a half day
    assert {d["date"]: d["close"] for d in days}["2026-12-24"] == "13:00"
    assert all(d["type"] == "calendar_day" and d["open"] == "09:30" for d in days)

    [aapl] = json_lines(cli(sandbox, tmp_path, "assets", "aapl", "-o", "json").stdout)
    assert aapl["symbol"] == "AAPL" and aapl["tradable"] is True and aapl["status"] == "active"
    listed = json_lines(cli(sandbox, tmp_path, "assets", "-o", "json").stdout)
    assert len(listed) > 100 and any(a["symbol"] == "MSFT" for a in listed)
    unknown = cli(sandbox, tmp_path, "assets", "ZZZZZ")
    assert unknown.returncode == 1 and "no asset ZZZZZ" in unknown.stderr

    grid = cli(sandbox, tmp_path, "clock", "-o", "table")
    assert grid.returncode == 0 and "next close" in grid.stdout
