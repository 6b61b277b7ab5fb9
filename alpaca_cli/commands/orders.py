"""`alpaca-cli orders`: list orders over any range, and `orders get` one by id or client id.

`orders` alone lists (a group invoked without a subcommand), so the listing's
options belong to `orders` and `get` takes its own: `alpaca-cli orders --status
all` and `alpaca-cli orders get ID` both parse one way only. The listing pages
through the whole range 500 at a time (the bridge moves `until` back), so its
cost grows with pages, not orders. Oldest first; `--limit N` keeps the newest N.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer

from alpaca_cli.choices import Side
from alpaca_cli.errors import BrokerRejected, UsageError
from alpaca_cli.invocation import (
    DebugOption,
    OutputChoice,
    OutputOption,
    ProfileOption,
    QuietOption,
    SandboxOption,
    start,
)

if TYPE_CHECKING:
    from alpaca_cli.bridge import Broker
    from alpaca_cli.domain import Order
    from alpaca_cli.output import Output

app = typer.Typer(name="orders", help="List orders, or show one.", no_args_is_help=False)


class StatusChoice(StrEnum):
    open = "open"
    closed = "closed"
    all = "all"


@dataclass
class _Common:
    """The common options given before `get` (`orders --sandbox get ID`), which `get` honours too."""

    output: OutputChoice | None
    debug: bool
    profile: str | None
    sandbox: bool
    quiet: bool


@app.callback(invoke_without_command=True)
def orders(
    ctx: typer.Context,
    status: Annotated[StatusChoice, typer.Option("--status", help="open, closed or all.")] = StatusChoice.open,
    symbols: Annotated[
        str | None, typer.Option("--symbols", help="Only these symbols, e.g. AAPL,MSFT.", show_default=False)
    ] = None,
    side: Annotated[
        Side | None, typer.Option("--side", help="Only buys or sells.", show_default=False, case_sensitive=False)
    ] = None,
    after: Annotated[
        str | None,
        typer.Option("--after", help="Submitted after this time (RFC 3339 or a date, UTC).", show_default=False),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option("--until", help="Submitted before this time (RFC 3339 or a date, UTC).", show_default=False),
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Only the newest N orders.", show_default=False)
    ] = None,
    nested: Annotated[bool, typer.Option("--nested", help="Show a group's exit orders under it, as legs.")] = False,
    output: OutputOption = None,
    debug: DebugOption = False,
    profile: ProfileOption = None,
    sandbox: SandboxOption = False,
    quiet: QuietOption = False,
) -> int | None:
    """List orders (open by default), every page of the range; `orders get` shows one."""
    if ctx.invoked_subcommand is not None:
        given = [
            flag
            for flag, value in (
                ("--status", status is not StatusChoice.open),
                ("--symbols", symbols is not None),
                ("--side", side is not None),
                ("--after", after is not None),
                ("--until", until is not None),
                ("--limit", limit is not None),
                ("--nested", nested),
            )
            if value
        ]
        if given:
            raise UsageError(f"{', '.join(given)} only appl{'ies' if len(given) == 1 else 'y'} to the listing")
        ctx.obj = _Common(output, debug, profile, sandbox, quiet)
        return None

    import asyncio

    from alpaca_cli import orders as rules

    wanted = rules.check_symbols(symbols) if symbols is not None else None
    since = rules.parse_time(after, "--after") if after is not None else None
    before = rules.parse_time(until, "--until") if until is not None else None
    if since is not None and before is not None and since >= before:
        raise UsageError(f"--after {after} is not before --until {until}: the range is empty")

    invocation = start(output, debug, profile, sandbox, quiet=quiet)

    async def run() -> list[Order]:
        from alpaca_cli.bridge import Broker

        async with Broker(invocation.connection) as broker:
            return await broker.orders(
                status.value,
                symbols=wanted,
                limit=limit,
                after=since,
                until=before,
                side=side.value if side else None,
                nested=nested,
            )

    _show(invocation.out, asyncio.run(run()), f"{status.value.capitalize()} orders")
    return 0


@app.command("get")
def get(
    ctx: typer.Context,
    order_id: Annotated[str | None, typer.Argument(help="The broker's order id.", show_default=False)] = None,
    client_order_id: Annotated[
        str | None, typer.Option("--client-order-id", help="The order with this client order id.")
    ] = None,
    output: OutputOption = None,
    debug: DebugOption = False,
    profile: ProfileOption = None,
    sandbox: SandboxOption = False,
    quiet: QuietOption = False,
) -> int:
    """Show one order, by id or by client order id, with its legs."""
    import asyncio

    from alpaca_cli import orders as rules

    if (order_id is None) == (client_order_id is None):
        raise UsageError("say which order: ORDER_ID or --client-order-id ID (exactly one)")
    oid = rules.check_order_id(order_id) if order_id is not None else None
    if client_order_id is not None:
        rules.check_client_order_id(client_order_id)
    common: _Common = ctx.obj or _Common(None, False, None, False, False)
    invocation = start(
        output or common.output,
        debug or common.debug,
        profile or common.profile,
        sandbox or common.sandbox,
        quiet=quiet or common.quiet,
    )

    async def run() -> Order:
        from alpaca_cli.bridge import Broker

        async with Broker(invocation.connection) as broker:
            wanted = oid
            if wanted is None:
                assert client_order_id is not None
                found = await broker.order_by_client_id(client_order_id)
                if found is None:
                    raise BrokerRejected(f"no order with client order id {client_order_id}", status=404)
                if found.order_class == "simple":
                    return found
                wanted = found.id  # fetched again by id: only that route nests a group's legs
            return await fetch_order(broker, wanted, nested=True)

    order = asyncio.run(run())
    _show(invocation.out, [order], f"Order {order.id}")
    return 0


async def fetch_order(broker: Broker, order_id: str, *, nested: bool = False) -> Order:
    """The order with this id, or one "not found" line (exit 1) when the broker answers 404 or 422.

    Shared by `orders get` and `replace`, so both say the same about an order
    the broker does not have (404) or will not look up (422).
    """
    try:
        return await broker.order(order_id, nested=nested)
    except BrokerRejected as refused:
        if refused.status in (404, 422):
            raise BrokerRejected(f"order {order_id} not found", status=404) from refused
        raise


def _show(out: Output, listed: list[Order], title: str) -> None:
    from alpaca_cli.output import records

    if out.json:
        for order in listed:
            out.emit(records.order(order))
        return
    if not listed:
        out.message("no orders")
        return
    from alpaca_cli.output import orders_table

    out.console.print(orders_table(listed, title, dates=True))
