"""The committed completion scripts are current, and bash really completes with them.

(That TAB never loads alpaca-py or pydantic is `tests/test_startup.py`'s job.)
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path
from types import ModuleType

import pytest
import typer

from alpaca_cli.cli import app

ROOT = Path(__file__).resolve().parent.parent


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_completions", ROOT / "scripts" / "gen_completions.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GEN = _generator()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("shell", sorted(GEN.FILES))
def test_committed_script_matches_the_entry_point(shell: str) -> None:
    committed = ROOT / "completions" / GEN.FILES[shell]
    assert committed.exists(), f"missing {committed.name}: run python scripts/gen_completions.py"
    assert committed.read_text() == GEN.generate(shell), (
        f"completions/{committed.name} is out of date: run python scripts/gen_completions.py"
    )


def test_zsh_script_starts_with_compdef() -> None:
    """compinit only picks up an fpath file whose first line is `#compdef`."""
    first = (ROOT / "completions" / "_alpaca-cli").read_text().splitlines()[0]
    assert first == "#compdef alpaca-cli"


def _bash_complete(*words: str) -> list[str]:
    """Source the committed bash script and press TAB after `words` (the last one is being typed)."""
    program = GEN.entry_point()
    if len(program) != 1:
        pytest.skip("needs the installed alpaca-cli console script")
    quoted = " ".join(f"'{w}'" for w in ("alpaca-cli", *words))
    script = (
        f"source '{ROOT / 'completions' / 'alpaca-cli.bash'}'\n"
        f"COMP_WORDS=({quoted}); COMP_CWORD={len(words)}\n"
        f"_alpaca_cli_completion '{program[0]}'\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    result = subprocess.run(["bash", "--norc", "--noprofile", "-c", script], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return [line for line in result.stdout.splitlines() if line]


needs_bash = pytest.mark.skipif(shutil.which("bash") is None, reason="bash not installed")


@needs_bash
@pytest.mark.timeout(60)
def test_bash_offers_every_command() -> None:
    commands = set(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
    assert {"status", "sandbox"} <= commands
    assert set(_bash_complete("")) == commands


@needs_bash
@pytest.mark.timeout(60)
def test_bash_completes_a_prefix_and_subcommand_options() -> None:
    assert "status" in _bash_complete("sta")
    assert _bash_complete("sandbox", "se") == ["serve"]
    options = _bash_complete("status", "--")
    assert {"--check", "--output", "--sandbox", "--help"} <= set(options)


@needs_bash
@pytest.mark.timeout(60)
def test_bash_offers_the_choices_of_an_option_and_the_profiles_of_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[paper]\nkey_id = "PK1"\n\n[live-main]\nkey_id = "AK1"\n')
    monkeypatch.setenv("ALPACA_CLI_CONFIG", str(config))
    assert _bash_complete("submit", "AAPL", "") == ["buy", "sell"]
    assert _bash_complete("submit", "AAPL", "buy", "--tif", "") == ["day", "gtc", "ioc", "fok", "opg", "cls"]
    assert _bash_complete("submit", "AAPL", "buy", "--type", "st") == ["stop", "stop_limit"]
    assert _bash_complete("submit", "AAPL", "buy", "--order-class", "o") == ["oco", "oto"]
    assert _bash_complete("replace", "ID", "--tif", "") == ["day", "gtc", "ioc", "fok", "opg", "cls"]
    assert _bash_complete("orders", "--side", "") == ["buy", "sell"]
    assert _bash_complete("stream", "bars", "AAPL", "--feed", "") == ["iex", "sip"]
    assert _bash_complete("status", "--profile", "") == ["live-main", "paper"]
    assert _bash_complete("--profile", "li") == ["live-main"]
