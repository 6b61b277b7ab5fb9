"""What the operator sees: `tail` and `stream bars` in a real terminal, at 80 and 160 columns.

Each command runs in a tmux pane (a real terminal emulator) against the
sandbox; connections are dropped under it, and the rendered screen is read
back with `capture-pane -J` (wrapped lines joined, so a row that wrapped shows
as one line longer than the pane). The screen must hold one footer, below
every notice, with nothing glued onto it, and rows within the width.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from helpers import cli_env, run_cli

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")

ROW = re.compile(r"^\d\d:\d\d:\d\d(\.\d{3})? ")


class Pane:
    """One tmux pane on a private server, running one command."""

    def __init__(self, socket: str, width: int, argv: list[str], env: dict[str, str]) -> None:
        self.socket = socket
        keep = {
            k: env[k] for k in ("PATH", "HOME", "ALPACA_CLI_CONFIG", "ALPACA_CLI_STATE_DIR", "ALPACA_CLI_SANDBOX_URL")
        }
        command = shlex.join(["env", "-i", "TERM=xterm-256color", *(f"{k}={v}" for k, v in keep.items()), *argv])
        self._tmux("new-session", "-d", "-x", str(width), "-y", "40", f"{command}; sleep 600")

    def _tmux(self, *args: str) -> str:
        return subprocess.run(
            ["tmux", "-L", self.socket, *args], capture_output=True, text=True, check=True, timeout=10
        ).stdout

    def screen(self) -> list[str]:
        """The visible lines, wrapped lines joined, trailing blanks dropped."""
        lines = [line.rstrip() for line in self._tmux("capture-pane", "-p", "-J").splitlines()]
        while lines and not lines[-1]:
            lines.pop()
        return lines

    def wait_for(self, found: Callable[[list[str]], bool], timeout: float = 20) -> list[str]:
        deadline = time.monotonic() + timeout
        while True:
            lines = self.screen()
            if found(lines):
                return lines
            if time.monotonic() > deadline:
                raise AssertionError("screen never showed what was expected:\n" + "\n".join(lines))
            time.sleep(0.2)

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, timeout=10)


@pytest.fixture
def pane(tmp_path: Path, sandbox: Any) -> Iterator[Callable[..., Pane]]:
    panes: list[Pane] = []

    def start(width: int, *args: str) -> Pane:
        env = cli_env(tmp_path, sandbox.url)
        opened = Pane(
            f"alpaca-cli-test-{os.getpid()}-{len(panes)}", width, [sys.executable, "-m", "alpaca_cli", *args], env
        )
        panes.append(opened)
        return opened

    yield start
    for opened in panes:
        opened.close()


def _has(text: str, count: int = 1) -> Callable[[list[str]], bool]:
    return lambda lines: sum(text in line for line in lines) >= count


def _drop(sandbox: Any, field: str) -> None:
    """Drop the stream's connections for a moment, then let it reconnect."""
    sandbox.set_faults(**{field: 0.3})
    time.sleep(1.0)
    sandbox.set_faults(**{field: None})


@pytest.mark.timeout(120)
@pytest.mark.parametrize("width", [80, 160])
def test_tail_notices_above_one_footer_and_rows_within_the_width(
    sandbox: Any, tmp_path: Path, pane: Callable[..., Pane], width: int
) -> None:
    tail = pane(width, "tail", "trade-updates", "--sandbox", "--poll-interval", "0.5")
    tail.wait_for(_has("trade-updates stream connected"))
    for n in (1, 2):
        _drop(sandbox, "drop_trading_every")
        tail.wait_for(_has(f"reconnected (reconnect {n}"))
    env = cli_env(tmp_path, sandbox.url)
    for side in ("buy", "sell"):
        placed = run_cli("submit", "AAPL", side, "--qty", "3", "--sandbox", "-o", "json", env=env)
        assert placed.returncode == 0, placed.stderr
    lines = tail.wait_for(lambda lines: sum(bool(ROW.match(line)) and " fill " in line for line in lines) >= 2)
    lines = tail.wait_for(_has("events 4"))

    footers = [i for i, line in enumerate(lines) if "● " in line]
    assert len(footers) == 1, lines
    assert footers[0] == len(lines) - 1 and lines[-1].startswith("● live"), lines
    assert len(lines[-1]) <= width, lines[-1]
    notices = [line for line in lines if "trade-updates stream" in line]
    assert all(line.startswith("trade-updates stream ") for line in notices), notices  # nothing glued on
    assert sum("disconnected: " in line for line in notices) == 2, lines
    rows = [line for line in lines if ROW.match(line)]
    assert len(rows) == 4, lines
    for row in rows:
        assert len(row) <= width, row
        assert re.search(r"AAPL +(buy|sell) +(new|fill 3 @ [\d.]+) +\d/3 +(new|filled) +stream$", row), row


@pytest.mark.timeout(120)
@pytest.mark.parametrize("width", [80, 160])
def test_stream_bars_one_title_and_one_footer_after_drops(sandbox: Any, pane: Callable[..., Pane], width: int) -> None:
    bars = pane(width, "stream", "bars", "AAPL", "MSFT", "BRK.B", "--sandbox")
    bars.wait_for(_has("market-data stream connected"))
    for n in (1, 2):
        _drop(sandbox, "drop_data_every")
        bars.wait_for(_has(f"reconnected (reconnect {n}"))
    lines = bars.wait_for(lambda lines: any(line.startswith("connected since") for line in lines))
    titles = [i for i, line in enumerate(lines) if "bars · iex · times in UTC" in line]
    assert len(titles) == 1, lines
    footers = [i for i, line in enumerate(lines) if " since " in line and "reconnects" in line]
    assert footers == [len(lines) - 1], lines
    notices = [i for i, line in enumerate(lines) if "market-data stream" in line]
    assert notices and max(notices) < titles[0], lines
    assert all(lines[i].startswith("market-data stream ") for i in notices), lines
    assert all(len(line) <= width for line in lines[titles[0] :]), lines


def test_the_footer_of_a_dropped_stream_says_since_when_it_is_down() -> None:
    from alpaca_cli.bridge.streams import StreamHealth
    from alpaca_cli.commands.stream import _Board

    class Handle:
        feed = "iex"
        health = StreamHealth(
            connected=False,
            connected_since=datetime(2026, 1, 2, 14, 30, 0, tzinfo=UTC),
            last_disconnect_at=datetime(2026, 1, 2, 14, 45, 7, tzinfo=UTC),
            reconnects=1,
        )

        queue_size = 10

        class items:  # stands in for the asyncio queue
            @staticmethod
            def qsize() -> int:
                return 0

    from rich.console import Console

    console = Console(width=80, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
    console.print(_Board(["AAPL"]).render([Handle()], datetime.now(UTC)))  # type: ignore[list-item]
    assert "disconnected since 14:45:07" in console.export_text()
