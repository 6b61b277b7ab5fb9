"""The committed completion scripts are current, and each shell really completes with them.

bash's completion function runs in a `bash` subprocess with COMP_WORDS and
COMP_CWORD set; zsh's runs with `words` and CURRENT set (compadd recording
what it is given), and once for real in an interactive zsh on a
pseudo-terminal; fish answers `complete -C`. zsh and fish tests skip where
the shell is not installed. None of it may start Python or call `alpaca-cli`.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "completions"
COMMANDS = [
    *("status", "submit", "cancel", "positions", "close", "replace", "activities", "clock", "calendar"),
    *("assets", "bars", "quote", "reconcile", "config", "demo", "orders", "sandbox", "stream", "tail"),
]
TIF = ["day", "gtc", "ioc", "fok", "opg", "cls"]


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_completions", ROOT / "scripts" / "gen_completions.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


GEN = _generator()


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A config file with two profiles; `python`, `python3` and `alpaca-cli` on PATH that
    leave a mark if anything runs them (a TAB must start no Python)."""
    config = tmp_path / "config.toml"
    config.write_text('[paper]\nkey_id = "PK1"\n\n[ "live-main" ]\nkey_id = "AK1"\n\n[paper.extra]\n')
    trap = tmp_path / "bin"
    trap.mkdir()
    for name in ("python", "python3", "alpaca-cli"):
        fake = trap / name
        fake.write_text(f"#!/bin/sh\necho {name} >> '{tmp_path / 'ran'}'\n")
        fake.chmod(0o755)
    (tmp_path / "state-a.json").write_text("{}")
    (tmp_path / "state-b.json").write_text("{}")
    base = {k: v for k, v in os.environ.items() if not k.startswith(("ALPACA_CLI_", "XDG_"))}
    return {**base, "PATH": f"{trap}:{base.get('PATH', '')}", "ALPACA_CLI_CONFIG": str(config), "HOME": str(tmp_path)}


@pytest.fixture(autouse=True)
def no_python_started(tmp_path: Path):  # type: ignore[no-untyped-def]
    yield
    ran = tmp_path / "ran"
    assert not ran.exists(), f"a TAB started {ran.read_text().split()}"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("shell", sorted(GEN.FILES))
def test_committed_script_is_current(shell: str) -> None:
    committed = SCRIPTS / GEN.FILES[shell]
    assert committed.exists(), f"missing {committed.name}: run python scripts/gen_completions.py"
    assert committed.read_text() == GEN.generate(shell), (
        f"completions/{committed.name} is out of date: run python scripts/gen_completions.py"
    )


def test_zsh_script_starts_with_compdef() -> None:
    """compinit only picks up an fpath file whose first line is `#compdef`."""
    assert (SCRIPTS / "_alpaca-cli").read_text().splitlines()[0] == "#compdef alpaca-cli"


# -- bash ---------------------------------------------------------------------------------


def bash_complete(env: dict[str, str], *lines: list[str]) -> list[list[str]]:
    """Press TAB after each list of words (the last one is being typed), in one bash."""
    script = [f"source '{SCRIPTS / 'alpaca-cli.bash'}'"]
    for words in lines:
        quoted = " ".join("'" + w.replace("'", "'\\''") + "'" for w in ("alpaca-cli", *words))
        script += [
            f"COMP_WORDS=({quoted}); COMP_CWORD={len(words)}; COMPREPLY=()",
            "_alpaca_cli",
            'printf "%s\\n" "${COMPREPLY[@]}" "--end--"',
        ]
    result = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", "\n".join(script)], capture_output=True, text=True, env=env, timeout=30
    )
    assert result.returncode == 0, result.stderr
    answers: list[list[str]] = [[]]
    for line in result.stdout.splitlines():
        if line == "--end--":
            answers.append([])
        elif line:
            answers[-1].append(line)
    return answers[: len(lines)]


def bash1(env: dict[str, str], *words: str) -> list[str]:
    return bash_complete(env, list(words))[0]


needs_bash = pytest.mark.skipif(shutil.which("bash") is None, reason="bash not installed")


@needs_bash
@pytest.mark.timeout(60)
def test_bash_offers_every_command_and_subcommand(env: dict[str, str]) -> None:
    commands, prefix, tail, stream, sandbox, orders = bash_complete(
        env, [""], ["st"], ["tail", ""], ["stream", ""], ["sandbox", "se"], ["orders", ""]
    )
    assert commands == COMMANDS
    assert prefix == ["status", "stream"]
    assert (tail, stream, sandbox, orders) == (["trade-updates"], ["bars", "quotes", "trades"], ["serve"], ["get"])


@needs_bash
@pytest.mark.timeout(60)
def test_bash_offers_options_with_the_common_ones_before_or_after_the_subcommand(env: dict[str, str]) -> None:
    root, status, after_globals, tail, serve, kinds = bash_complete(
        env,
        ["--"],
        ["status", "--"],
        ["--sandbox", "-o", "json", "--profile", "paper", "st"],
        ["--sandbox", "tail", "trade-updates", "--sandbox", "--c"],
        ["sandbox", "serve", "--al"],
        ["stream", "bars,quotes", "AAPL", "--f"],  # several kinds at once: the first one's options
    )
    assert {"--output", "--profile", "--sandbox", "--quiet", "--debug", "--version", "--help"} <= set(root)
    assert {"--check", "--orders", "--output", "--sandbox", "--profile", "--quiet", "--help"} <= set(status)
    assert after_globals == ["status", "stream"]  # -o's and --profile's values are not taken for commands
    assert tail == ["--count"]
    assert serve == ["--always-open"]
    assert kinds == ["--feed"]


@needs_bash
@pytest.mark.timeout(60)
def test_bash_offers_the_fixed_values_of_options_and_arguments(env: dict[str, str]) -> None:
    answers = bash_complete(
        env,
        ["submit", "AAPL", ""],
        ["submit", "AAPL", "buy", "--tif", ""],
        ["submit", "AAPL", "buy", "--type", "st"],
        ["submit", "AAPL", "buy", "--order-class", "o"],
        ["submit", "--tif", "=", "g"],  # bash splits --tif=g at the '='
        ["replace", "ID", "--tif", ""],
        ["orders", "--side", ""],
        ["orders", "--status", ""],
        ["stream", "bars", "AAPL", "MSFT", "--feed", ""],
        ["-o", ""],
        ["activities", "-o", ""],
        ["status", "--expect", ""],
        ["tail", "trade-updates", "--events", "fill,pa"],
        ["activities", "--type", "FILL,DIVC"],
    )
    assert answers == [
        ["buy", "sell"],
        TIF,
        ["stop", "stop_limit"],
        ["oco", "oto"],
        ["gtc"],
        TIF,
        ["buy", "sell"],
        ["open", "closed", "all"],
        ["iex", "sip"],
        ["auto", "table", "json"],
        ["auto", "table", "json", "csv"],
        ["market-data", "trade-updates"],
        ["fill,partial_fill"],
        ["FILL,DIVCGL", "FILL,DIVCGS"],
    ]


@needs_bash
@pytest.mark.timeout(60)
def test_bash_completes_every_fixed_set_of_values_of_the_cli(env: dict[str, str]) -> None:
    """Each `click.Choice` of the real command tree, option or argument, offered in full."""
    cases = []
    for node in GEN.tree():
        for where, values in node.values.items():
            if values.kind != "choice":
                continue
            words = node.path.split()
            words += ["X"] * int(where[1:]) if where.startswith("#") else [where]
            cases.append(([*words, ""], list(values.words)))
    assert len(cases) > 20
    answers = bash_complete(env, *(words for words, _ in cases))
    for (words, expected), answer in zip(cases, answers, strict=True):
        assert answer == expected, words


@needs_bash
@pytest.mark.timeout(60)
def test_bash_reads_profiles_from_the_config_file_where_the_tool_does(env: dict[str, str], tmp_path: Path) -> None:
    assert bash1(env, "status", "--profile", "") == ["paper", "live-main"]
    assert bash1(env, "--profile", "li") == ["live-main"]
    xdg = tmp_path / "xdg"
    (xdg / "alpaca-cli").mkdir(parents=True)
    (xdg / "alpaca-cli" / "config.toml").write_text("[default]\n[work]\n")
    del env["ALPACA_CLI_CONFIG"]
    assert bash1({**env, "XDG_CONFIG_HOME": str(xdg)}, "--profile", "") == ["default", "work"]
    (tmp_path / ".config" / "alpaca-cli").mkdir(parents=True)
    (tmp_path / ".config" / "alpaca-cli" / "config.toml").write_text("[home]\n")
    assert bash1(env, "--profile", "") == ["home"]
    assert bash1({**env, "XDG_CONFIG_HOME": "relative"}, "--profile", "") == ["home"]  # as platformdirs
    assert bash1({**env, "ALPACA_CLI_CONFIG": str(tmp_path / "missing.toml")}, "--profile", "") == []


@needs_bash
@pytest.mark.timeout(60)
def test_bash_offers_file_names_only_for_path_options(env: dict[str, str], tmp_path: Path) -> None:
    files, symbol, order_id = bash_complete(
        env, ["reconcile", "--state", f"{tmp_path}/state-"], ["submit", ""], ["cancel", ""]
    )
    assert files == [f"{tmp_path}/state-a.json", f"{tmp_path}/state-b.json"]
    assert symbol == [] and order_id == []


# -- zsh ----------------------------------------------------------------------------------

needs_zsh = pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh not installed")

# compadd, compset and _files stand in for zsh's completion system: they print what the
# function hands them (zsh itself filters by the typed prefix afterwards).
ZSH_STUBS = """\
compdef() { :; }
compadd() { while [[ $# -gt 0 && $1 != -- ]]; do shift; done; shift; print -rl -- "$@"; }
compset() { return 1; }
_files() { print -r -- FILES "$@"; }
"""


def zsh_complete(env: dict[str, str], *lines: list[str]) -> list[list[str]]:
    script = [ZSH_STUBS, f"source '{SCRIPTS / '_alpaca-cli'}'"]
    for words in lines:
        quoted = " ".join("'" + w.replace("'", "'\\''") + "'" for w in ("alpaca-cli", *words))
        script += [f"words=({quoted}); CURRENT={len(words) + 1}", "_alpaca_cli", "print -- --end--"]
    result = subprocess.run(["zsh", "-f", "-c", "\n".join(script)], capture_output=True, text=True, env=env, timeout=30)
    assert result.returncode == 0, result.stderr
    answers: list[list[str]] = [[]]
    for line in result.stdout.splitlines():
        if line == "--end--":
            answers.append([])
        elif line:
            answers[-1].append(line)
    return answers[: len(lines)]


@needs_zsh
@pytest.mark.timeout(60)
def test_zsh_completes_commands_options_values_and_profiles(env: dict[str, str]) -> None:
    answers = zsh_complete(
        env,
        [""],
        ["stream", ""],
        ["--sandbox", "-o", "json", "tail", ""],
        ["status", "--"],
        ["submit", "AAPL", ""],
        ["submit", "AAPL", "buy", "--tif", ""],
        ["--profile", ""],
        ["reconcile", "--state", ""],
        ["cancel", ""],
        ["stream", "trades,quotes", "AAPL", "--feed", ""],
    )
    commands, stream, tail, status, side, tif, profiles, files, order_id, feeds = answers
    assert commands == COMMANDS
    assert (stream, tail) == (["bars", "quotes", "trades"], ["trade-updates"])
    assert {"--check", "--output", "--sandbox", "--help"} <= set(status)
    assert (side, tif, profiles) == (["buy", "sell"], TIF, ["paper", "live-main"])
    assert files == ["FILES"]
    assert order_id == []
    assert feeds == ["iex", "sip"]


@needs_zsh
@pytest.mark.timeout(60)
def test_zsh_completes_for_real_on_a_terminal(env: dict[str, str]) -> None:
    """An interactive zsh with compinit, the script sourced, and TAB pressed twice."""
    script = f"""
zmodload zsh/zpty
zpty z 'PS1="> " TERM=dumb zsh -f -i'
zpty -w z 'autoload -U compinit && compinit -u -D && source {SCRIPTS / "_alpaca-cli"}'
zpty -w -n z 'alpaca-cli submit AAPL buy --tif '$'\\t\\t'
zpty -r z screen '*opg*'
print -r -- $screen
zpty -d z
"""
    result = subprocess.run(["zsh", "-f", "-c", script], capture_output=True, text=True, env=env, timeout=30)
    assert result.returncode == 0, result.stderr
    listing = result.stdout.splitlines()[-1].split()
    assert listing == sorted(TIF)


# -- fish ---------------------------------------------------------------------------------

needs_fish = pytest.mark.skipif(shutil.which("fish") is None, reason="fish not installed")


def fish_complete(env: dict[str, str], *lines: str) -> list[list[str]]:
    """`complete -C` for each command line: the candidates fish would offer, without descriptions."""
    script = [f"source '{SCRIPTS / 'alpaca-cli.fish'}'"]
    for line in lines:
        script += [f"complete -C {GEN._fish_quote(line)} | string replace -r '\\t.*' ''", "echo --end--"]
    result = subprocess.run(
        ["fish", "--no-config", "-c", "\n".join(script)], capture_output=True, text=True, env=env, timeout=30
    )
    assert result.returncode == 0, result.stderr
    answers: list[list[str]] = [[]]
    for out in result.stdout.splitlines():
        if out == "--end--":
            answers.append([])
        elif out:
            answers[-1].append(out)
    return answers[: len(lines)]


@needs_fish
@pytest.mark.timeout(60)
def test_fish_completes_commands_options_values_and_profiles(env: dict[str, str], tmp_path: Path) -> None:
    answers = fish_complete(
        env,
        "alpaca-cli ",
        "alpaca-cli sandbox ",
        "alpaca-cli --sandbox -o json st",
        "alpaca-cli status --ch",
        "alpaca-cli submit AAPL ",
        "alpaca-cli submit AAPL buy --tif ",
        "alpaca-cli submit --tif=g",
        "alpaca-cli --profile ",
        "alpaca-cli tail trade-updates --events fill,pa",
        f"alpaca-cli tail trade-updates --state {tmp_path}/state-",
        "alpaca-cli cancel ",
        "alpaca-cli stream bars,trades AAPL --fe",
    )
    commands, sandbox, prefix, check, side, tif, tif_eq, profiles, events, files, order_id, kinds = answers
    assert sorted(commands) == sorted(COMMANDS)
    assert (sandbox, prefix, check) == (["serve"], ["status", "stream"], ["--check"])
    assert (side, sorted(tif), tif_eq) == (["buy", "sell"], sorted(TIF), ["--tif=gtc"])
    assert sorted(profiles) == ["live-main", "paper"]
    assert events == ["fill,partial_fill"]
    assert files == [f"{tmp_path}/state-a.json", f"{tmp_path}/state-b.json"]
    assert order_id == []
    assert kinds == ["--feed"]
