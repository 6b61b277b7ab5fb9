"""`alpaca-cli config`: the settings a command would use, and where each one came from.

A command of its own rather than `status --config`: it talks to no broker, so it works
(and helps most) when the keys are missing or point at the wrong place.
"""

from __future__ import annotations

from typing import Any

from alpaca_cli.invocation import DebugOption, OutputOption, ProfileOption, QuietOption, SandboxOption, configure


def config(
    output: OutputOption = None,
    debug: DebugOption = False,
    profile: ProfileOption = None,
    sandbox: SandboxOption = False,
    quiet: QuietOption = False,
) -> int:
    """Show the resolved environment, profile, URLs and key id, and where each setting came from."""
    from alpaca_cli.config import describe, origins

    out, settings, flags = configure(output, debug, profile, sandbox, quiet=quiet)
    rows = describe(settings, origins(**flags))
    if out.json:
        from alpaca_cli.output import records

        out.emit(records.config(rows))
        return 0
    from rich.table import Table

    table = Table(title="configuration", title_justify="left")
    table.add_column("setting", no_wrap=True)
    table.add_column("value", no_wrap=True, overflow="fold")  # a URL whole, where the width allows
    table.add_column("from", overflow="fold")
    for name, value, origin in rows:
        table.add_row(name, _cell(name, value), origin.text())
    out.console.print(table)
    return 0


def _cell(name: str, value: Any) -> Any:
    """A setting's value as the table shows it: unset ones say so, a config file that is not
    there too (a typo in its path is the usual reason keys seem to be ignored)."""
    from pathlib import Path

    from rich.text import Text

    if value is None:
        return Text("not set", style="dim")
    if name == "config_file" and not Path(value).exists():
        return Text.assemble(str(value), (" (no such file)", "dim"))
    return str(value)
