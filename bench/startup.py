"""Start-up: `alpaca-cli --help` and one TAB of shell completion, against `python -c pass`.

A TAB runs the static bash script of `completions/` (bash sourcing it and
calling its completion function, as bash does on a key press): it starts no
Python, so the target is at most the baseline (1x). `--help` starts the
entry point; its target is 6x. Reference rows show the floor any Typer
program pays (importing typer), what a TAB cost when the scripts called the
entry point back (Typer's completion protocol, which old installed scripts
still use), and what importing alpaca-py at the top would cost.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench import Case, alpaca_cli, cli_env, interleaved, peak_rss_mb, summarize

NAME = "startup"
DESCRIPTION = "alpaca-cli --help and TAB completion vs python -c pass (median of 21 runs each)"
RUNS = 21
BASELINE = "python -c pass"
TARGETS = {"alpaca-cli --help": 6.0, "TAB: alpaca-cli st": 1.0, "TAB: alpaca-cli submit --tif ": 1.0}
BASH_SCRIPT = Path(__file__).resolve().parent.parent / "completions" / "alpaca-cli.bash"


def _tab(words: list[str], env: dict[str, str]) -> Case:
    """bash pressing TAB after `alpaca-cli WORDS` (the last word being typed) with the static script."""
    quoted = " ".join(f"'{word}'" for word in ["alpaca-cli", *words])
    script = f"source '{BASH_SCRIPT}'; COMP_WORDS=({quoted}); COMP_CWORD={len(words)}; _alpaca_cli"
    bash = shutil.which("bash") or "/bin/bash"
    return [bash, "--norc", "--noprofile", "-c", script], env


def _callback(words: str, cword: int, env: dict[str, str]) -> Case:
    """One TAB answered by the entry point itself (`_ALPACA_CLI_COMPLETE`), as before the static scripts."""
    complete = {"_ALPACA_CLI_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(cword)}
    return [alpaca_cli()], {**env, **complete}


def run() -> list[dict[str, Any]]:
    cli = alpaca_cli()
    python = sys.executable
    with tempfile.TemporaryDirectory(prefix="alpaca-cli-bench-") as home:
        env = cli_env(Path(home))
        cases: dict[str, Case] = {
            BASELINE: ([python, "-c", "pass"], env),
            "python -c 'import typer' (floor)": ([python, "-c", "import typer"], env),
            "alpaca-cli --help": ([cli, "--help"], env),
            "alpaca-cli status --help": ([cli, "status", "--help"], env),
            "TAB: alpaca-cli st": _tab(["st"], env),
            "TAB: alpaca-cli submit --tif ": _tab(["submit", "--tif", ""], env),
            "TAB via the entry point (ref)": _callback("alpaca-cli st", 1, env),
            "python -c 'import alpaca.trading' (ref)": ([python, "-c", "import alpaca.trading.client"], env),
        }
        samples = interleaved(cases, RUNS)
        rss = {case: peak_rss_mb(*argv_env) for case, argv_env in cases.items()}
    rows = [
        summarize(case, runs, baseline=None if case == BASELINE else BASELINE, rss_mb=rss[case])
        for case, runs in samples.items()
    ]
    base = rows[0]["median_ms"]
    for row in rows:
        target = TARGETS.get(row["case"])
        if target is not None:
            row["target"] = f"<= {target:g}x"
            row["meets"] = "yes" if row["median_ms"] <= target * base else "NO"
    return rows
