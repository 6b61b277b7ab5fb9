"""`alpaca-cli config`: the settings a command would use, and where each one came from.

A command of its own rather than `status --config`: it talks to no broker, so it works
(and helps most) when the keys are missing or point at the wrong place.
"""

from __future__ import annotations

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
    for column in ("setting", "value", "from"):
        table.add_column(column, overflow="fold")
    for name, value, origin in rows:
        table.add_row(name, "" if value is None else str(value), origin.text())
    out.console.print(table)
    return 0
