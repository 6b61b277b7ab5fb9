"""`alpaca-cli assets [SYMBOL]`: what can be traded, shorted, bought in fractions."""

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


def assets(
    symbol: Annotated[str | None, typer.Argument(help="Only this symbol.", show_default=False)] = None,
    output: OutputOption = None,
    debug: DebugOption = False,
    profile: ProfileOption = None,
    sandbox: SandboxOption = False,
    quiet: QuietOption = False,
) -> int:
    """Every active US equity, or one symbol (unknown: exit 1), with what it allows."""
    from alpaca_cli import orders

    ticker = orders.check_symbol(symbol) if symbol is not None else None
    invocation = start(output, debug, profile, sandbox, quiet=quiet)
    listed = every_or_one(
        invocation,
        ticker,
        lambda broker: broker.assets(),
        lambda broker, s: broker.asset(s),
        f"no asset {ticker} at the broker",
    )
    out = invocation.out
    if out.json:
        from alpaca_cli.output import records

        for asset in listed:
            out.emit(records.asset(asset))
        return 0
    from rich.table import Table

    table = Table(title="Assets")
    for column in ("symbol", "name", "exchange", "status", "tradable", "shortable", "fractionable", "marginable"):
        table.add_column(column)
    for a in listed:
        flags = (a.tradable, a.shortable, a.fractionable, a.marginable)
        table.add_row(a.symbol, a.name, a.exchange, a.status, *("yes" if flag else "no" for flag in flags))
    out.console.print(table)
    return 0
