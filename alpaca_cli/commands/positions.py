"""`alpaca-cli positions [SYMBOL]`: open positions, or the one in SYMBOL (exit 1 when there is none)."""

from __future__ import annotations

from typing import Annotated

import typer

from alpaca_cli.invocation import (
    DebugOption,
    OutputOption,
    ProfileOption,
    QuietOption,
    SandboxOption,
    every_or_one,
    start,
)


def positions(
    symbol: Annotated[str | None, typer.Argument(help="Only this symbol's position.", show_default=False)] = None,
    output: OutputOption = None,
    debug: DebugOption = False,
    profile: ProfileOption = None,
    sandbox: SandboxOption = False,
    quiet: QuietOption = False,
) -> int:
    """List open positions, or show one."""
    from alpaca_cli import orders

    ticker = orders.check_symbol(symbol) if symbol is not None else None
    invocation = start(output, debug, profile, sandbox, quiet=quiet)
    held = every_or_one(
        invocation,
        ticker,
        lambda broker: broker.positions(),
        lambda broker, s: broker.position(s),
        f"no open position in {ticker}",
    )
    out = invocation.out
    if out.json:
        from alpaca_cli.output import records

        for position in held:
            out.emit(records.position(position))
        return 0
    if not held:
        out.message("no open positions")
        return 0
    from alpaca_cli.output import positions_table

    out.console.print(positions_table(held, "Positions"))
    return 0
