"""`alpaca-cli ... | head -1`: when the reader goes away, the tool exits quietly."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest

from tests.helpers import CLI, cli_env, run_cli

pytestmark = pytest.mark.timeout(90)


def test_a_reader_that_leaves_early_gets_no_traceback(sandbox, tmp_path: Path) -> None:
    sandbox.reset()
    env = cli_env(tmp_path, sandbox.url)
    state = tmp_path / "state.json"
    assert run_cli("reconcile", "--state", str(state), "--init", "--sandbox", env=env).returncode == 0
    sandbox.admin("POST", "/admin/seed", {"open_orders": 3000, "positions": 0})
    # 3,000 differences of a few hundred bytes each: far more than a pipe buffer holds.
    command = " ".join(
        shlex.quote(part) for part in [*CLI, "reconcile", "--state", str(state), "--sandbox", "-o", "json"]
    )
    result = subprocess.run(
        ["bash", "-c", f'{command} | head -1; echo "exit=${{PIPESTATUS[0]}}" >&2'],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.stdout.count("\n") == 1 and '"type":"difference"' in result.stdout
    assert result.stderr.strip().splitlines() == ["exit=0"], result.stderr
