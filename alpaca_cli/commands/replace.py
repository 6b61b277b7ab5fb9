"""`alpaca-cli replace`: change a working order's size, prices or time in force.

Validated locally like `submit` (the flags themselves before anything is
sent; whether they fit the order's type once it is read), guarded like it on
live accounts, and never applied twice: the replacement's client order id is
fixed first, and a lost answer is resolved by looking it up
(`alpaca_cli.replacing`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from alpaca_cli.choices import TimeInForce
from alpaca_cli.invocation import (
    DebugOption,
    LiveOption,
    OutputOption,
    ProfileOption,
    QuietOption,
    SandboxOption,
    YesOption,
    preflight,
    start,
)

if TYPE_CHECKING:
    from alpaca_cli.domain import Order
    from alpaca_cli.output import Output
    from alpaca_cli.replacing import Replaced


def replace(
    order_id: Annotated[str, typer.Argument(help="The broker's id of the working order.", show_default=False)],
    qty: Annotated[str | None, typer.Option("--qty", help="New size (whole shares).", show_default=False)] = None,
    limit_price: Annotated[
        str | None, typer.Option("--limit-price", help="New limit (limit, stop_limit).", show_default=False)
    ] = None,
    stop_price: Annotated[
        str | None, typer.Option("--stop-price", help="New stop (stop, stop_limit).", show_default=False)
    ] = None,
    trail: Annotated[
        str | None,
        typer.Option("--trail", help="New trail (trailing_stop: percent or price, as placed).", show_default=False),
    ] = None,
    tif: Annotated[
        TimeInForce | None,
        typer.Option("--tif", help="New time in force.", show_default=False, case_sensitive=False),
    ] = None,
    client_order_id: Annotated[
        str | None,
        typer.Option("--client-order-id", help="The replacement's own id; re-running with it cannot replace twice."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the change that would be sent; send nothing.")
    ] = False,
    yes: YesOption = False,
    live: LiveOption = False,
    output: OutputOption = None,
    debug: DebugOption = False,
    profile: ProfileOption = None,
    sandbox: SandboxOption = False,
    quiet: QuietOption = False,
) -> int:
    """Replace a working order with a changed one; never twice."""
    import asyncio

    from alpaca_cli import orders, replacing

    oid = orders.check_order_id(order_id)
    changes = replacing.validate_changes(
        qty=qty,
        limit_price=limit_price,
        stop_price=stop_price,
        trail=trail,
        time_in_force=tif.value if tif is not None else None,
        client_order_id=client_order_id,
    )
    invocation = start(output, debug, profile, sandbox, live, quiet=quiet)
    out = invocation.out
    connection = invocation.connection
    if not connection.is_live:
        out.banner(connection.environment)
    decision = "go" if dry_run else invocation.live_decision(yes=yes)

    async def run() -> int:
        from alpaca_cli.bridge import Broker
        from alpaca_cli.commands.orders import fetch_order

        async with Broker(connection) as broker:
            old = await fetch_order(broker, oid)
            replacing.check_applies(old, changes)
            action = replacing.describe(old, changes)
            if dry_run:
                if out.json:
                    from alpaca_cli.output import records

                    out.emit(records.replace_request(old, changes, connection.environment))
                else:
                    out.message(f"would {action}; nothing was sent")
                return 0
            await preflight(broker, decision, action)
            replaced = await replacing.replace(broker, old, changes)
            _show(out, old, replaced)
            return 0

    return asyncio.run(run())


def _show(out: Output, old: Order, replaced: Replaced) -> None:
    from alpaca_cli.output import records

    new = replaced.order
    if replaced.recovered:
        out.message("the broker's answer was lost; found the replacement it had made: nothing was sent twice")
    elif replaced.sends > 1:
        out.message("the broker's answer was lost and looking found no replacement: sent once more, and it answered")
    if out.json:
        out.emit(records.order(new, recovered=replaced.recovered))
        return
    from alpaca_cli.output import orders_table

    out.console.print(orders_table([new], f"Replaced order {old.id} with"))
