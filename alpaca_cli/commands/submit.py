"""`alpaca-cli submit`: place one order, safely.

The order is validated locally before anything is sent, gets its client
order id before the first send, and is placed through `orders.place`, which
cannot create a second order after a lost answer. A live account needs
`--live` and a confirmation (or `--yes`). `--wait` listens to trade updates
before sending (or polls the order when the stream is unavailable) and exits
0 when the order filled, 1 when it ended rejected, canceled or expired, 124
when `--timeout` ran out while it is still working (as `timeout(1)` does).
An order placed but not recorded in `--state` is exit 6, never 2: it exists.
The following itself is `alpaca_cli.follow`; this module parses, calls and
renders.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from alpaca_cli.choices import OrderClass, OrderType, Side, TimeInForce
from alpaca_cli.errors import UsageError
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
    from alpaca_cli import follow
    from alpaca_cli.bridge import Broker
    from alpaca_cli.domain import Order, OrderRequest, TradeUpdate
    from alpaca_cli.invocation import Invocation
    from alpaca_cli.orders import Placement
    from alpaca_cli.output import Output

DEFAULT_TIMEOUT = 60.0


def submit(
    symbol: Annotated[str, typer.Argument(help="Stock symbol, e.g. AAPL or BRK.B.", show_default=False)],
    side: Annotated[Side, typer.Argument(help="buy or sell.", show_default=False, case_sensitive=False)],
    qty: Annotated[str | None, typer.Option("--qty", help="Shares (fractional allowed for day market/limit).")] = None,
    notional: Annotated[
        str | None, typer.Option("--notional", help="Dollar amount instead of --qty (day market orders).")
    ] = None,
    order_type: Annotated[
        OrderType, typer.Option("--type", help="Order type.", case_sensitive=False)
    ] = OrderType.market,
    limit_price: Annotated[str | None, typer.Option("--limit-price", help="For limit and stop_limit.")] = None,
    stop_price: Annotated[str | None, typer.Option("--stop-price", help="For stop and stop_limit.")] = None,
    trail_percent: Annotated[
        str | None, typer.Option("--trail-percent", help="For trailing_stop: trail by this percent.")
    ] = None,
    trail_price: Annotated[
        str | None, typer.Option("--trail-price", help="For trailing_stop: trail by this many dollars.")
    ] = None,
    tif: Annotated[TimeInForce, typer.Option("--tif", help="Time in force.", case_sensitive=False)] = TimeInForce.day,
    extended_hours: Annotated[
        bool, typer.Option("--extended-hours", help="Allow pre/after-market fills (day limit orders).")
    ] = False,
    client_order_id: Annotated[
        str | None,
        typer.Option("--client-order-id", help="Your own id (max 128); re-running with the same id is safe."),
    ] = None,
    take_profit: Annotated[
        str | None,
        typer.Option("--take-profit", help="Exit limit price (with --stop-loss: a bracket).", show_default=False),
    ] = None,
    stop_loss: Annotated[
        str | None,
        typer.Option("--stop-loss", help="Exit stop price (and --take-profit: a bracket).", show_default=False),
    ] = None,
    stop_loss_limit: Annotated[
        str | None,
        typer.Option("--stop-loss-limit", help="Make the stop loss a stop-limit at this price.", show_default=False),
    ] = None,
    order_class: Annotated[
        OrderClass | None,
        typer.Option(
            "--order-class",
            help="bracket (both exits), oto (one exit) or oco (a limit exit with a stop loss).",
            show_default=False,
            case_sensitive=False,
        ),
    ] = None,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait",
            help="Print trade updates until the order ends. Exit 0 filled, 1 rejected, canceled or expired, "
            "124 still working at --timeout.",
        ),
    ] = False,
    timeout: Annotated[
        float | None,
        typer.Option("--timeout", help=f"With --wait: stop waiting after S seconds [{DEFAULT_TIMEOUT:g}].", min=0),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the request that would be sent; send nothing.")
    ] = False,
    state: Annotated[
        Path | None, typer.Option("--state", help="Record the new order in this state file.", dir_okay=False)
    ] = None,
    yes: YesOption = False,
    live: LiveOption = False,
    output: OutputOption = None,
    debug: DebugOption = False,
    profile: ProfileOption = None,
    sandbox: SandboxOption = False,
    quiet: QuietOption = False,
) -> int:
    """Place one order: validated locally, never sent twice, guarded on live accounts."""
    import asyncio

    from alpaca_cli import orders

    request = orders.validate_order(
        symbol,
        side.value,
        qty=qty,
        notional=notional,
        order_type=order_type.value,
        limit_price=limit_price,
        stop_price=stop_price,
        trail_percent=trail_percent,
        trail_price=trail_price,
        time_in_force=tif.value,
        extended_hours=extended_hours,
        client_order_id=client_order_id,
        take_profit=take_profit,
        stop_loss=stop_loss,
        stop_loss_limit=stop_loss_limit,
        order_class=order_class.value if order_class is not None else None,
    )
    if timeout is not None and not wait:
        raise UsageError("--timeout only applies with --wait")
    if timeout is not None and timeout <= 0:
        raise UsageError(f"--timeout must be greater than zero, got {timeout:g}")
    invocation = start(output, debug, profile, sandbox, live, quiet=quiet)
    out = invocation.out
    connection = invocation.connection
    if not connection.is_live:
        out.banner(connection.environment)
    if dry_run:
        _show_request(out, request, connection.environment)
        return 0
    decision = invocation.live_decision(yes=yes)
    wait_for = (timeout or DEFAULT_TIMEOUT) if wait else None
    return asyncio.run(_submit(invocation, request, decision, state, wait_for))


async def _submit(
    invocation: Invocation, request: OrderRequest, decision: str, state: Path | None, timeout: float | None
) -> int:
    from alpaca_cli import follow, orders
    from alpaca_cli.bridge import Broker

    out = invocation.out
    async with Broker(invocation.connection) as broker:
        account_id = await preflight(broker, decision, orders.describe(request), state=state)
        if timeout is None:
            placement = await orders.place(broker, request)
            if placement.order.order_class != "simple" and not placement.order.legs:
                placement = await _with_exits(broker, out, placement)
            _report(out, placement)
            follow.record_new(state, account_id, placement.order)
            return 0
        outcome = await follow.place_and_follow(
            broker,
            request,
            timeout,
            state=state,
            account_id=account_id,
            on_placed=lambda placement: _report(out, placement),
            on_update=lambda update: _show_update(out, update),
            warn=out.warn,
            note=lambda text: out.message(text, style="dim"),
        )
        return _waited(out, outcome, timeout)


async def _with_exits(broker: Broker, out: Output, placement: Placement) -> Placement:
    """The group order found by client id, fetched again by id (only that route nests its exits).

    Best effort: the order is placed whatever this fetch does, so a failure
    keeps the un-nested order (still reported and recorded) and says so.
    """
    from alpaca_cli.errors import CliError

    order = placement.order
    try:
        nested = await broker.order(order.id, nested=True)
    except CliError as error:
        out.warn(
            f"order {order.id} is placed, but fetching its exit orders failed ({error.message}): "
            f"see them with `alpaca-cli orders get {order.id}`"
        )
        return placement
    return dataclasses.replace(placement, order=nested)


def _waited(out: Output, outcome: follow.Outcome, timeout: float) -> int:
    """Say how the wait ended when the order is not done; the exit code of `--wait`."""
    from alpaca_cli import orders
    from alpaca_cli.errors import ExitCode

    final = outcome.order
    if outcome.stopped_exit_code is not None:
        out.message(f"stopped waiting; order {final.id} is {final.status}")
        return outcome.stopped_exit_code
    if not final.is_final:
        out.message(
            f"still {final.status} after {timeout:g} s: order {final.id} keeps working at the broker",
            essential=True,
        )
        return int(ExitCode.TIMED_OUT)
    return orders.wait_exit_code(final)


def _report(out: Output, placement: Placement) -> None:
    """Print the order; fail (exit 1) when the client id belongs to a different order."""
    if out.json:
        from alpaca_cli.output import records

        out.emit(records.order(placement.order, submission=placement.how, sends=placement.sends))
    else:
        _panel(out, placement.order, placement.how)
    if placement.how == "recovered":
        out.warn(f"the broker's answer was lost; found the order by its client id {placement.order.client_order_id}")
    elif placement.how == "duplicate":
        out.warn(f"client order id {placement.order.client_order_id} was already used: this is that order")
    if not placement.matches:
        from alpaca_cli.errors import BrokerRejected

        order = placement.order
        raise BrokerRejected(
            f"client order id {order.client_order_id} already belongs to a different order "
            f"({order.side} {order.qty or order.notional} {order.symbol} {order.type}, id {order.id}): "
            "nothing was sent",
            status=422,
        )


# --------------------------------------------------------------------------- rendering


def _show_request(out: Output, request: OrderRequest, environment: str) -> None:
    from alpaca_cli.output import records

    record = records.order_request(request, environment)
    if out.json:
        out.emit(record)
        return
    from rich.panel import Panel
    from rich.table import Table

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim")
    grid.add_column()
    for key, value in record.items():
        if key != "type":
            grid.add_row(key, str(value))
    out.console.print(Panel(grid, title=f"Dry run · would send to {environment}", border_style="yellow"))


def _panel(out: Output, order: Order, how: str) -> None:
    from rich.panel import Panel
    from rich.table import Table

    from alpaca_cli.output import records

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim")
    grid.add_column()
    for key, value in records.order(order).items():
        if key not in ("type", "legs") and value is not None and value is not False:
            grid.add_row(key, str(value))
    color = {"filled": "green", "rejected": "red", "canceled": "red", "expired": "red"}.get(order.status, "blue")
    title = f"Order {order.status}" + ("" if how == "sent" else f" · {how}")
    out.console.print(Panel(grid, title=title, border_style=color))
    if order.legs:
        from alpaca_cli.output import orders_table

        out.console.print(orders_table(order.legs, f"Its {order.order_class} exits"))


def _show_update(out: Output, update: TradeUpdate) -> None:
    """One update of the followed order, exactly as `tail` prints it: its `trade_update` record or its row."""
    if out.json:
        from alpaca_cli.output import records

        out.write_lines([records.trade_update(update) + "\n"])
        return
    from alpaca_cli.output import trade_update_text

    out.console.print(trade_update_text(update, out.console.width), no_wrap=True, crop=True)
