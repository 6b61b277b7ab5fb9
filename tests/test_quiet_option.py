"""`-q/--quiet` after every account command, end to end against the sandbox (rate limit on).

The contract accepts the common options both before and after the
subcommand; `-q` after it must parse, and silence the sandbox banner and
notices, on every command that talks to the broker.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from helpers import cli_env

from alpaca_cli.cli import main

pytestmark = pytest.mark.timeout(120)

ORDER = "{order}"  # replaced by the id of a resting order the test places
COMMANDS: list[list[str]] = [
    ["positions"],
    ["close", "--all", "--dry-run"],
    ["close", "NKE", "--dry-run"],
    ["replace", ORDER, "--qty", "2", "--tif", "DAY", "--dry-run"],
    ["orders", "--side", "BUY"],
    ["orders", "get", ORDER],
    ["activities"],
    ["clock"],
    ["calendar"],
    ["assets", "NKE"],
]


@pytest.mark.parametrize("argv", COMMANDS, ids=[" ".join(argv[:2]) for argv in COMMANDS])
def test_quiet_after_the_subcommand_parses_and_silences_stderr(
    sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    for name, value in cli_env(tmp_path, sandbox.url).items():
        monkeypatch.setenv(name, value)
    if sandbox.call(lambda: sandbox.broker.position_qty("NKE")) == 0:
        body = {"symbol": "NKE", "qty": "3", "side": "buy", "type": "market", "time_in_force": "day"}
        sandbox.call(lambda: sandbox.broker.submit(body))
        for _ in range(100):
            sandbox.call(lambda: sandbox.broker.step())
            if sandbox.call(lambda: sandbox.broker.position_qty("NKE")) == 3:
                break
    price = sandbox.call(lambda: sandbox.broker.price("NKE"))
    resting = {
        "symbol": "NKE",
        "qty": "1",
        "side": "buy",
        "type": "limit",
        "time_in_force": "gtc",
        "limit_price": str((price / 2).quantize(Decimal("0.01"))),
    }
    order = sandbox.call(lambda: sandbox.broker.submit(resting))
    with pytest.raises(SystemExit) as exited:
        main([*(order["id"] if arg == ORDER else arg for arg in argv), "-q", "--sandbox", "-o", "json"])
    out, err = capfd.readouterr()
    assert exited.value.code == 0, err
    assert err == ""
    assert out.strip()
