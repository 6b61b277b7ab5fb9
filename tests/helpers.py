"""Running the real `alpaca-cli` entry point as a subprocess, as users and scripts do.

Every end-to-end test goes through these, so that the environment is isolated
the same way everywhere: no user config file, no `.env`, health files in a
temporary state dir, and no real Alpaca credentials leaking in from the shell.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

CLI = [sys.executable, "-m", "alpaca_cli"]


def cli_env(home: Path, sandbox_url: str | None = None, **extra: str) -> dict[str, str]:
    """A clean environment for one CLI run; `home` holds config and state dirs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("APCA_", "ALPACA_CLI_"))}
    env["ALPACA_CLI_CONFIG"] = str(home / "config.toml")
    env["ALPACA_CLI_STATE_DIR"] = str(home / "state")
    env["COLUMNS"] = "160"
    if sandbox_url:
        env["ALPACA_CLI_SANDBOX_URL"] = sandbox_url
    env.update(extra)
    return env


def run_cli(
    *args: str,
    env: Mapping[str, str],
    timeout: float = 60,
    input: str | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `alpaca-cli ARGS` to completion; stdout and stderr captured as text.

    A run still going after `timeout` is sent SIGABRT with Python's fault handler on, so the
    failure shows where every one of its threads was stuck (then it is killed).
    """
    process = subprocess.Popen(
        [*CLI, *args],
        env={**env, "PYTHONFAULTHANDLER": "1"},
        stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
    )
    try:
        out, err = process.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGABRT)
        try:
            out, err = process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            out, err = process.communicate()
        command = " ".join(args)
        raise AssertionError(f"alpaca-cli {command} still running after {timeout} s; its threads:\n{err}") from None
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def spawn_cli(*args: str, env: Mapping[str, str], cwd: Path | None = None) -> subprocess.Popen[str]:
    """Start a long-running `alpaca-cli ARGS` with piped stdout/stderr (line buffered text)."""
    return subprocess.Popen(
        [*CLI, *args],
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=1,
        cwd=cwd,
    )


def json_lines(text: str) -> list[dict[str, Any]]:
    """Parse JSON Lines output; every non-empty line must be one JSON object."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def health_record(env: Mapping[str, str], stream: str, pid: int | None = None) -> dict[str, Any] | None:
    """The health file of `stream` written by process `pid` (by default the one most recently
    written) in the run's state dir; None when there is none yet."""
    state = Path(env["ALPACA_CLI_STATE_DIR"])
    paths = sorted(state.glob(f"health-sandbox-{stream}-{pid or '*'}.json"), key=lambda p: p.stat().st_mtime)
    for path in reversed(paths):
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):  # replaced or half-read between the listing and the read
            continue
    return None


def served(sandbox: Any, route: str | None = None) -> int:
    """Requests the sandbox has answered: on `route` ("GET /v2/orders"), or on any."""
    counts = dict(sandbox.counts)
    return counts.get(route, 0) if route else sum(counts.values())


def assert_refused_before_sending(sandbox: Any, home: Path, monkeypatch: Any, capfd: Any, argv: list[str]) -> None:
    """`alpaca-cli ARGV --sandbox`, run in-process through the real entry point: exit 2, one
    error line, nothing on stdout, and not one request reached the broker."""
    from alpaca_cli.cli import main

    for name, value in cli_env(home, sandbox.url).items():
        monkeypatch.setenv(name, value)
    before = served(sandbox)
    try:
        main([*argv, "--sandbox"])
    except SystemExit as exited:
        code = exited.code
    else:
        code = 0
    out, err = capfd.readouterr()
    assert code == 2, err
    assert out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("alpaca-cli: error:")
    assert served(sandbox) == before
