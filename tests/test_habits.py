"""Habits from other CLIs: common options on either side of the subcommand, help without a
command, one suggestion for a typo, `--quiet`, and help that lists every fixed set of values."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers import cli_env, run_cli


@pytest.fixture
def env(tmp_path: Path, sandbox: Any) -> dict[str, str]:
    return cli_env(tmp_path, sandbox.url)


@pytest.mark.parametrize(
    "argv",
    [
        ["--sandbox", "status", "-o", "json"],
        ["status", "--sandbox", "-o", "json"],
        ["-o", "json", "--sandbox", "status"],
        ["--sandbox", "-o", "table", "status", "-o", "json"],  # after the subcommand wins
    ],
)
def test_common_options_before_or_after_the_subcommand_mean_the_same(env: dict[str, str], argv: list[str]) -> None:
    result = run_cli(*argv, env=env)
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["type"] == "status" and record["environment"] == "sandbox"


def test_bare_command_prints_help_on_stdout_and_exits_0(tmp_path: Path) -> None:
    result = run_cli(env=cli_env(tmp_path))
    assert result.returncode == 0
    assert result.stdout.startswith("Usage: alpaca-cli [OPTIONS] COMMAND")
    assert "--quiet" in result.stdout and "error" not in result.stderr
    group = run_cli("tail", env=cli_env(tmp_path))
    assert group.returncode == 0 and "trade-updates" in group.stdout


def test_a_typo_suggests_once(tmp_path: Path) -> None:
    result = run_cli("stauts", env=cli_env(tmp_path))
    assert result.returncode == 2
    assert result.stderr.count("Did you mean") == 1, result.stderr
    assert len(result.stderr.splitlines()) == 1


@pytest.mark.parametrize("where", ["before", "after"])
def test_quiet_silences_the_banner_but_never_an_error(env: dict[str, str], where: str) -> None:
    argv = ["submit", "AAPL", "buy", "--qty", "1", "--dry-run", "--sandbox", "-o", "json"]
    loud = run_cli(*argv, env=env)
    assert "[SANDBOX]" in loud.stderr
    quiet = run_cli(*(["-q", *argv] if where == "before" else [*argv, "--quiet"]), env=env)
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr
    assert json.loads(quiet.stdout)["symbol"] == json.loads(loud.stdout)["symbol"] == "AAPL"
    failed = run_cli("-q", "submit", "AAPL", "buy", "--qty", "1", "--tif", "forever", "--sandbox", env=env)
    assert failed.returncode == 2 and failed.stderr.startswith("alpaca-cli: error: Invalid value for '--tif'")


HELP_CHOICES = {
    ("submit",): [
        "SIDE:{buy|sell}",
        "--type [market|limit|stop|stop_limit|trailing_stop]",
        "--tif [day|gtc|ioc|fok|opg|cls]",
    ],
    ("stream", "bars"): ["--feed [iex|sip]"],
    ("status",): ["-o, --output [auto|table|json]", "-q, --quiet"],
    (): ["-o, --output [auto|table|json]", "--sandbox", "--profile TEXT", "-q, --quiet", "--debug"],
}


@pytest.mark.parametrize("command", sorted(HELP_CHOICES), ids=lambda c: " ".join(c) or "root")
def test_help_lists_the_allowed_values(tmp_path: Path, command: tuple[str, ...]) -> None:
    result = run_cli(*command, "--help", env=cli_env(tmp_path))
    assert result.returncode == 0, result.stderr
    for expected in HELP_CHOICES[command]:
        assert expected in result.stdout, (expected, result.stdout)


def test_quiet_keeps_the_live_banner_which_names_the_key_id(capsys: pytest.CaptureFixture[str]) -> None:
    from alpaca_cli.output import Output

    quiet = Output("json", quiet=True)
    quiet.banner("sandbox")
    quiet.message("a notice")
    quiet.banner("live", "AKEXAMPLE")
    quiet.warn("something is off")
    err = capsys.readouterr().err
    assert err.splitlines() == ["[LIVE] · key id AKEXAMPLE", "warning: something is off"]
