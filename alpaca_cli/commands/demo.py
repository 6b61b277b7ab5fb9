"""`alpaca-cli demo`: the tool's main job in one run, for someone with no Alpaca account.

It starts the sandbox broker inside this process (a free loopback port, a
fast market), runs the trade-update supervisor exactly as `tail
trade-updates --state` does, and places orders through the same code as
`submit`: a market order, a limit order that fills when the price crosses
it, a large order that fills in pieces, one the broker refuses for buying
power. Then it holds the trade stream's updates back while an order fills
and drops the connection, so the fill is never delivered — and the
supervisor recovers it from the broker (polled as soon as the stream drops,
checked again before the new connection is trusted; `"source":"reconcile"`).
It finishes with the real `status` and `reconcile` commands against the same
sandbox and a short summary.

On a terminal the story is narrated on stderr and the fills appear on stdout
as `tail` prints them; piped, the same story is JSON Lines (`demo_step`,
`trade_update`, `stream`, then the commands' own lines and a `demo_summary`).
Exit 0 when the story ends in sync, 1 when it does not. The story itself is
`alpaca_cli.demo_story`; this command sets up the sandbox and runs it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alpaca_cli.invocation import DebugOption, OutputOption

if TYPE_CHECKING:
    from alpaca_cli.output import Output


def demo(output: OutputOption = None, debug: DebugOption = False) -> int:
    """Watch fills live, lose some, recover them: against a local sandbox, no account needed."""
    import asyncio
    import tempfile

    from alpaca_cli.demo_story import TICK, Story
    from alpaca_cli.invocation import given, setup_logging
    from alpaca_cli.sandbox.server import SandboxThread

    output, debug = output or given.output, debug or given.debug  # `alpaca-cli -o json demo` too
    setup_logging(debug)
    started = time.monotonic()
    previous_state_dir = os.environ.get("ALPACA_CLI_STATE_DIR")
    with tempfile.TemporaryDirectory(prefix="alpaca-cli-demo-") as scratch:
        # Health files and the state file live in the scratch dir: the demo
        # never touches the state of a real `tail` or `sandbox serve`.
        os.environ["ALPACA_CLI_STATE_DIR"] = str(Path(scratch) / "state")
        try:
            # Always open: the tour shows fills and bars at whatever hour it is run.
            # The rate limit stays on, as on the real broker.
            with SandboxThread(port=0, seed=11, tick_interval=TICK, bar_interval=5.0, always_open=True) as sandbox:
                out = _output(output, debug, sandbox.url)
                story = Story(out, sandbox, Path(scratch) / "state.json", started)
                return asyncio.run(story.run())
        finally:
            if previous_state_dir is None:
                os.environ.pop("ALPACA_CLI_STATE_DIR", None)
            else:
                os.environ["ALPACA_CLI_STATE_DIR"] = previous_state_dir


def _output(output: Any, debug: bool, url: str) -> Output:
    from alpaca_cli.config import load_settings
    from alpaca_cli.output import Output

    settings = load_settings(output=output.value if output else None, sandbox=True, sandbox_url=url)
    return Output(settings.output, debug=debug)
