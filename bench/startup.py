"""Start-up: `alpaca-cli --help` and one TAB of shell completion, against `python -c pass`.

Every TAB in bash, zsh or fish runs the whole entry point once, so whatever
`alpaca_cli.cli` imports is paid on each key press; the target is under
150 ms per TAB. Two reference rows show the floor (importing typer, which
any Typer CLI pays) and what importing alpaca-py at the top would cost.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

from bench import Case, alpaca_cli, cli_env, interleaved, peak_rss_mb, summarize

NAME = "startup"
DESCRIPTION = "alpaca-cli --help and TAB completion vs python -c pass (median of 21 runs each)"
RUNS = 21
TAB_TARGET_MS = 150.0
BASELINE = "python -c pass"


def _complete(words: str, cword: int, env: dict[str, str]) -> dict[str, str]:
    """The environment bash's completion function gives the entry point on TAB."""
    return {**env, "_ALPACA_CLI_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(cword)}


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
            "TAB: alpaca-cli st": ([cli], _complete("alpaca-cli st", 1, env)),
            "TAB: alpaca-cli status --": ([cli], _complete("alpaca-cli status --", 2, env)),
            "python -c 'import alpaca.trading' (ref)": ([python, "-c", "import alpaca.trading.client"], env),
        }
        samples = interleaved(cases, RUNS)
        rss = {case: peak_rss_mb(*argv_env) for case, argv_env in cases.items()}
    rows = []
    for case, runs in samples.items():
        row = summarize(case, runs, baseline=None if case == BASELINE else BASELINE, rss_mb=rss[case])
        if case.startswith("TAB"):
            row["target_ms"] = TAB_TARGET_MS
            row["meets"] = "yes" if row["median_ms"] < TAB_TARGET_MS else "NO"
        rows.append(row)
    return rows
