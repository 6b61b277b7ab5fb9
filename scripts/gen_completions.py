"""Write the bash, zsh and fish completion scripts under `completions/` (`--check`: only compare).

The scripts come from the installed `alpaca-cli` entry point itself
(`_ALPACA_CLI_COMPLETE=source_<shell> alpaca-cli`), the same call Typer's
`--install-completion` makes, so the committed files are exactly what a
user's shell would get. They hold no command names: on each TAB the shell
calls `alpaca-cli` back with `_ALPACA_CLI_COMPLETE=complete_<shell>`, and
the app answers from its current commands and options. They change only
when Typer's templates or the program name do; `tests/test_completions.py`
fails when the committed copies are stale.

    python scripts/gen_completions.py          # regenerate
    python scripts/gen_completions.py --check  # exit 1 if any file is out of date
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

COMPLETIONS = Path(__file__).resolve().parent.parent / "completions"
FILES = {"bash": "alpaca-cli.bash", "zsh": "_alpaca-cli", "fish": "alpaca-cli.fish"}


def entry_point() -> list[str]:
    """The `alpaca-cli` console script of this interpreter's environment, else `python -m alpaca_cli`."""
    beside = Path(sys.executable).with_name("alpaca-cli")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("alpaca-cli")
    return [found] if found else [sys.executable, "-m", "alpaca_cli"]


def generate(shell: str) -> str:
    """The completion script for `shell`, with `#compdef` on zsh's first line as compinit requires."""
    env = {**os.environ, "_ALPACA_CLI_COMPLETE": f"source_{shell}"}
    result = subprocess.run(entry_point(), env=env, capture_output=True, text=True, timeout=60, check=True)
    if not result.stdout.strip():
        raise RuntimeError(f"alpaca-cli printed no {shell} completion script: {result.stderr.strip()}")
    return result.stdout.strip() + "\n"


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for shell, name in FILES.items():
        path = COMPLETIONS / name
        script = generate(shell)
        current = path.read_text() if path.exists() else None
        if current == script:
            continue
        stale.append(name)
        if not check:
            path.parent.mkdir(exist_ok=True)
            path.write_text(script)
    if check and stale:
        print(f"out of date: {', '.join(stale)} (run: python scripts/gen_completions.py)", file=sys.stderr)
        return 1
    for name in stale:
        print(f"wrote completions/{name}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
