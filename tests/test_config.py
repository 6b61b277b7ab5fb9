"""Configuration precedence, profiles, the sandbox switch and the secret's masking."""

from __future__ import annotations

from pathlib import Path

import pytest

from alpaca_cli.config import PAPER_URL, load_settings, resolve
from alpaca_cli.errors import UsageError


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No user config, no .env and no APCA_* variables from the developer's shell."""
    import os

    for name in list(os.environ):
        if name.startswith(("APCA_", "ALPACA_CLI_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("ALPACA_CLI_CONFIG", str(tmp_path / "config.toml"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write_config(home: Path, text: str) -> None:
    (home / "config.toml").write_text(text, encoding="utf-8")


def test_defaults_are_paper_and_need_credentials(isolated: Path) -> None:
    settings = load_settings()
    assert settings.base_url == PAPER_URL
    assert settings.output == "auto"
    with pytest.raises(UsageError, match="no API credentials"):
        resolve(settings)


def test_environment_variables_use_alpacas_names(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APCA_API_KEY_ID", "envkey")
    monkeypatch.setenv("APCA_API_SECRET_KEY", "envsecret")
    monkeypatch.setenv("APCA_API_BASE_URL", "https://api.alpaca.markets/")
    connection = resolve(load_settings())
    assert connection.key_id == "envkey"
    assert connection.secret.get_secret_value() == "envsecret"
    assert connection.environment == "live"
    assert connection.trading_url == "https://api.alpaca.markets"
    assert connection.stream_url == "wss://api.alpaca.markets/stream"
    assert connection.data_stream_url("iex") == "wss://stream.data.alpaca.markets/v2/iex"


def test_precedence_flags_over_env_over_dotenv_over_profile(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_config(
        isolated, '[default]\nkey_id = "profilekey"\nsecret_key = "p"\noutput = "table"\ndata_url = "http://p"\n'
    )
    assert load_settings().key_id == "profilekey"
    (isolated / ".env").write_text("APCA_API_KEY_ID=dotenvkey\nALPACA_CLI_OUTPUT=json\n", encoding="utf-8")
    settings = load_settings()
    assert (settings.key_id, settings.output, settings.data_url) == ("dotenvkey", "json", "http://p")
    monkeypatch.setenv("APCA_API_KEY_ID", "envkey")
    assert load_settings().key_id == "envkey"
    assert load_settings(output="table").output == "table"


def test_named_profile_from_flag_or_environment(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_config(
        isolated,
        '[default]\nkey_id = "d"\nsecret_key = "d"\n\n'
        '[live]\nkey_id = "l"\nsecret_key = "l"\nbase_url = "https://api.alpaca.markets"\n',
    )
    assert resolve(load_settings(profile="live")).environment == "live"
    monkeypatch.setenv("ALPACA_CLI_PROFILE", "live")
    assert load_settings().key_id == "l"
    monkeypatch.delenv("ALPACA_CLI_PROFILE")
    assert resolve(load_settings()).environment == "paper"


def test_unknown_profile_and_unknown_setting_are_usage_errors(isolated: Path) -> None:
    write_config(isolated, '[default]\nkey_id = "d"\n[other]\nbogus = 1\n')
    with pytest.raises(UsageError, match="profile 'nope' not found"):
        load_settings(profile="nope")
    with pytest.raises(UsageError, match="unknown setting"):
        load_settings(profile="other")
    write_config(isolated, "not = [valid toml")
    with pytest.raises(UsageError, match="cannot read config file"):
        load_settings()


def test_sandbox_switch_points_everything_at_the_sandbox(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APCA_API_KEY_ID", "real")
    monkeypatch.setenv("ALPACA_CLI_SANDBOX_URL", "http://127.0.0.1:9999/")
    connection = resolve(load_settings(sandbox=True))
    assert connection.environment == "sandbox"
    assert connection.key_id == "SANDBOXKEY"
    assert connection.trading_url == connection.data_url == "http://127.0.0.1:9999"
    assert connection.stream_url == "ws://127.0.0.1:9999/stream"
    assert connection.data_stream_url("sip") == "ws://127.0.0.1:9999/v2/sip"


def test_live_needs_an_explicit_yes(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().live is False
    monkeypatch.setenv("ALPACA_CLI_LIVE", "1")
    assert load_settings().live is True


def test_secret_is_masked_everywhere(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APCA_API_KEY_ID", "k")
    monkeypatch.setenv("APCA_API_SECRET_KEY", "hunter2-very-secret")
    settings = load_settings()
    connection = resolve(settings)
    for text in (repr(settings), str(settings), repr(connection), settings.model_dump_json()):
        assert "hunter2-very-secret" not in text


def test_bad_output_value_is_one_usage_error(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALPACA_CLI_OUTPUT", "xml")
    with pytest.raises(UsageError, match="invalid configuration"):
        load_settings()


def test_only_the_contracts_variable_names_count(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A field's bare name (`LIVE`, `SANDBOX`, `OUTPUT`, `KEY_ID`) in the environment or .env is
    someone else's variable: it must not allow live orders or switch the broker."""
    for name, value in {"LIVE": "1", "SANDBOX": "1", "OUTPUT": "json", "KEY_ID": "k", "DEADLINE": "1"}.items():
        monkeypatch.setenv(name, value)
    (isolated / ".env").write_text("PROFILE=nope\nSECRET_KEY=s\nBASE_URL=https://api.alpaca.markets\n")
    settings = load_settings()
    assert (settings.live, settings.sandbox, settings.output, settings.key_id) == (False, False, "auto", None)
    assert (settings.profile, settings.secret_key, settings.base_url, settings.deadline) == (None, None, PAPER_URL, 20)
    assert load_settings(live=True, sandbox=True, output="json").live is True
