"""`alpaca-cli positions [SYMBOL]`: open positions, or the one in SYMBOL (exit 1 when there is none)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from alpaca_cli.errors import BrokerRejected
from alpaca_cli.invocation import DebugOption, OutputOption, ProfileOption, QuietOption, SandboxOption, start

if TYPE_CHECKING:
    from alpaca_cli.domain import Position


def positions(
    symbol: Annotated[str | None, typer.Argument(help="Only this symbol's position.", show_default=False)] = None,
    output: OutputOption = None,
    debug: DebugOption = False,
    profile: ProfileOption = None,
    sandbox: SandboxOption = False,
    quiet: QuietOption = False,
) -> int:
    """List open positions, or show one."""
    import asyncio

    from alpaca_cli import orders

    ticker = orders.check_symbol(symbol) if symbol is not None else None
    invocation = start(output, debug, profile, sandbox, quiet=quiet)

    async def run() -> list[Position]:
        from alpaca_cli.bridge import Broker

        async with Broker(invocation.connection) as broker:
            if ticker is None:
                return await broker.positions()
            found = await broker.position(ticker)
            if found is None:
                raise BrokerRejected(f"no open position in {ticker}", status=404)
            return [found]

    held = asyncio.run(run())
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
