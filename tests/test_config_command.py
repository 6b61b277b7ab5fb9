"""`alpaca-cli config`, `--debug`'s account of the settings, and the warning about a config
file that others can read: all through the installed entry point, against real files."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import cli_env, json_lines, run_cli

SECRET = "s3cr3t-value-never-shown"
CONFIG = f"""\
[default]
key_id = "PKDEFAULTDEFAULTDEF1"
secret_key = "{SECRET}"

[work]
key_id = "AKWORKWORKWORKWORK99"
secret_key = "{SECRET}"
base_url = "https://api.alpaca.markets"
"""


@pytest.fixture
def home(tmp_path: Path) -> Path:
    config = tmp_path / "config.toml"
    config.write_text(CONFIG)
    config.chmod(0o600)
    return tmp_path


@pytest.mark.timeout(60)
def test_config_shows_each_setting_and_where_it_came_from(home: Path) -> None:
    (home / ".env").write_text("ALPACA_CLI_DEADLINE=9\n")
    env = cli_env(home, APCA_API_DATA_URL="https://data.example")
    result = run_cli("-o", "json", "config", "--profile", "work", env=env, cwd=home)
    assert result.returncode == 0, result.stderr
    [record] = json_lines(result.stdout)
    assert record["type"] == "config"
    assert (record["environment"], record["profile"], record["key_id"]) == ("live", "work", "AKWO…RK99")
    assert record["secret_key"] == "********"
    assert record["trading_url"] == "https://api.alpaca.markets"
    assert record["stream_url"] == "wss://api.alpaca.markets/stream"
    assert (record["data_url"], record["deadline"], record["live_allowed"]) == ("https://data.example", 9, False)
    config = str(home / "config.toml")
    assert record["sources"] == {
        "environment": {"from": "derived", "name": "trading_url"},
        "profile": {"from": "flag", "name": "--profile"},
        "config_file": {"from": "environment", "name": "ALPACA_CLI_CONFIG"},
        "key_id": {"from": "profile", "name": "work", "path": config},
        "secret_key": {"from": "profile", "name": "work", "path": config},
        "trading_url": {"from": "profile", "name": "work", "path": config},
        "stream_url": {"from": "derived", "name": "trading_url"},
        "data_url": {"from": "environment", "name": "APCA_API_DATA_URL"},
        "data_stream_url": {"from": "default"},
        "deadline": {"from": ".env", "name": "ALPACA_CLI_DEADLINE", "path": str(home / ".env")},
        "output": {"from": "flag", "name": "--output"},
        "live_allowed": {"from": "default"},
    }
    assert SECRET not in result.stdout + result.stderr


@pytest.mark.timeout(60)
def test_config_works_without_keys_and_draws_a_table(home: Path) -> None:
    (home / "config.toml").unlink()
    result = run_cli("config", "-o", "table", env=cli_env(home), cwd=home)
    assert result.returncode == 0, result.stderr
    assert "paper" in result.stdout and "https://paper-api.alpaca.markets" in result.stdout
    sandbox = json_lines(run_cli("config", "--sandbox", "-o", "json", env=cli_env(home), cwd=home).stdout)[0]
    assert (sandbox["environment"], sandbox["sources"]["environment"]) == (
        "sandbox",
        {"from": "flag", "name": "--sandbox"},
    )


@pytest.mark.timeout(60)
def test_debug_logs_the_profile_the_urls_and_the_sources_without_the_secret(home: Path) -> None:
    """Before the command talks to anyone, so they are there when it then fails (no sandbox here)."""
    env = cli_env(home, "http://127.0.0.1:9", APCA_API_SECRET_KEY=SECRET, ALPACA_CLI_DEADLINE="2")
    result = run_cli("--debug", "clock", "--sandbox", "--profile", "work", env=env, cwd=home)
    assert result.returncode == 4, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("DEBUG alpaca_cli.config:")]
    assert len(lines) == 3, result.stderr
    profile, urls, sources = lines
    assert profile.endswith(f"profile work (flag --profile), config file {home / 'config.toml'}")
    assert urls.endswith(
        "sandbox: trading_url http://127.0.0.1:9, stream_url ws://127.0.0.1:9/stream, "
        "data_url http://127.0.0.1:9, data_stream_url ws://127.0.0.1:9"
    )
    assert "key_id: flag --sandbox; secret_key: flag --sandbox" in sources
    assert "deadline: environment variable ALPACA_CLI_DEADLINE" in sources
    assert SECRET not in result.stdout + result.stderr


@pytest.mark.timeout(60)
@pytest.mark.parametrize("quiet", [[], ["-q"]], ids=["plain", "quiet"])
def test_a_config_file_with_a_secret_that_others_can_read_is_warned_about_once(home: Path, quiet: list[str]) -> None:
    """A security warning, so `--quiet` keeps it (as it keeps every warning)."""
    config = home / "config.toml"
    config.chmod(0o644)
    result = run_cli(*quiet, "config", "-o", "json", env=cli_env(home), cwd=home)
    assert result.returncode == 0
    assert result.stderr.splitlines() == [
        f"warning: config file {config} holds a secret and other users may read it: run chmod 600 {config}"
    ]
    config.chmod(0o600)
    assert run_cli(*quiet, "config", "-o", "json", env=cli_env(home), cwd=home).stderr == ""


@pytest.mark.timeout(60)
def test_no_warning_for_a_readable_config_file_without_secrets(home: Path) -> None:
    config = home / "config.toml"
    config.write_text('[default]\nkey_id = "PKDEFAULTDEFAULTDEF1"\n')
    config.chmod(0o644)
    result = run_cli("config", "-o", "json", env=cli_env(home, APCA_API_SECRET_KEY=SECRET), cwd=home)
    assert (result.returncode, result.stderr) == (0, "")
