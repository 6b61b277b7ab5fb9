"""`alpaca-cli close`: close a position (or part of it), or every position.

Same guards as `submit`: validated before anything is sent, refused on a live
account without `--live`, confirmed by a prompt naming what will be sold or
bought (`--yes` skips it). Never closes twice: after a lost answer it looks
at the symbol's orders before sending again (`alpaca_cli.closing`).
`--dry-run` reads the position to say what would be sent, and sends nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from alpaca_cli.errors import BrokerRejected, UsageError
from alpaca_cli.invocation import (
    DebugOption,
    Invocation,
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
    from decimal import Decimal

    from alpaca_cli.bridge import Broker
    from alpaca_cli.closing import Closed
    from alpaca_cli.domain import Position
    from alpaca_cli.output import Output


def close(
    symbol: Annotated[str | None, typer.Argument(help="The position's symbol.", show_default=False)] = None,
    qty: Annotated[str | None, typer.Option("--qty", help="Close only this many shares.", show_default=False)] = None,
    percentage: Annotated[
        str | None, typer.Option("--percentage", help="Close only this percent of it (0-100].", show_default=False)
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Close every position.")] = False,
    cancel_orders: Annotated[
        bool, typer.Option("--cancel-orders", help="With --all: cancel every open order first.")
    ] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would be sold or bought; send nothing.")] = False,
    state: Annotated[
        Path | None, typer.Option("--state", help="Record the closing orders in this state file.", dir_okay=False)
    ] = None,
    yes: YesOption = False,
    live: LiveOption = False,
    output: OutputOption = None,
    debug: DebugOption = False,
    profile: ProfileOption = None,
    sandbox: SandboxOption = False,
    quiet: QuietOption = False,
) -> int:
    """Close a position at market (all or part of it), or every position; never twice."""
    import asyncio

    from alpaca_cli import orders

    if (symbol is None) == (not all_):
        raise UsageError("say what to close: SYMBOL or --all (exactly one)")
    if qty is not None and percentage is not None:
        raise UsageError("give --qty or --percentage, not both")
    if all_ and (qty is not None or percentage is not None):
        raise UsageError("--qty and --percentage apply to one position, not with --all")
    if cancel_orders and not all_:
        raise UsageError("--cancel-orders only applies with --all")
    ticker = orders.check_symbol(symbol) if symbol is not None else None
    size = orders.parse_amount(qty, "--qty")
    share = orders.parse_amount(percentage, "--percentage")
    if share is not None and share > 100:
        raise UsageError(f"--percentage must be at most 100, got {percentage}")

    invocation = start(output, debug, profile, sandbox, live, quiet=quiet)
    connection = invocation.connection
    if not connection.is_live:
        invocation.out.banner(connection.environment)
    decision = "go" if dry_run else invocation.live_decision(yes=yes)

    async def run() -> int:
        from alpaca_cli.bridge import Broker

        async with Broker(connection) as broker:
            if ticker is None:
                return await _close_all(broker, invocation, decision, dry_run, state, cancel_orders, yes)
            return await _close_one(broker, invocation, ticker, size, share, decision, dry_run, state)

    return asyncio.run(run())


def _what(position: Position, qty: Decimal | None, percentage: Decimal | None) -> str:
    """`sell 10 AAPL at market (closing the long position of 12)`: what the prompt and dry run name."""
    from alpaca_cli.closing import closing_side

    if qty is not None:
        amount = f"{qty}"
    elif percentage is not None:
        amount = f"{percentage}% of"
    else:
        amount = f"{position.qty}"
    return (
        f"{closing_side(position)} {amount} {position.symbol} at market "
        f"(closing the {position.side} position of {position.qty})"
    )


async def _close_one(
    broker: Broker,
    invocation: Invocation,
    symbol: str,
    qty: Decimal | None,
    percentage: Decimal | None,
    decision: str,
    dry_run: bool,
    state: Path | None,
) -> int:
    from alpaca_cli import closing

    out = invocation.out
    position = await broker.position(symbol)
    if position is None:
        raise BrokerRejected(f"no open position in {symbol}: nothing to close", status=404)
    if qty is not None and qty > position.qty:
        raise BrokerRejected(f"cannot close {qty} {symbol}: the position is {position.qty}", status=403)
    action = _what(position, qty, percentage)
    if dry_run:
        if out.json:
            from alpaca_cli.output import records

            environment = invocation.connection.environment
            out.emit(records.close_request(position, closing.closing_side(position), environment, qty, percentage))
        else:
            out.message(f"would {action}; nothing was sent")
        return 0
    account_id = await preflight(broker, decision, action, state=state)
    closed = await closing.close(broker, position, qty=qty, percentage=percentage)
    return _finish(out, closed, state, account_id)


async def _close_all(
    broker: Broker,
    invocation: Invocation,
    decision: str,
    dry_run: bool,
    state: Path | None,
    cancel_orders: bool,
    yes: bool,
) -> int:
    """Every position in one request; on a terminal, asked first even on paper (`--yes` skips it)."""
    from alpaca_cli import closing, orders
    from alpaca_cli.output import positions_table

    out = invocation.out
    held = await broker.positions()
    if not held:
        out.message("no open positions: nothing to close")
        return 0
    action = _what_all(held, cancel_orders)
    if dry_run:
        if out.json:
            from alpaca_cli.output import records

            environment = invocation.connection.environment
            for position in held:
                out.emit(records.close_request(position, closing.closing_side(position), environment, None, None))
        else:
            out.err.print(positions_table(held, "Would close"))
            out.message(f"would {action}; nothing was sent")
        return 0
    if out.interactive:
        out.err.print(positions_table(held, "Closing"))
    if decision != "confirm" and sys.stdin.isatty() and not yes and not _asked(action):
        raise orders.NotConfirmed("not confirmed: nothing was sent")
    account_id = await preflight(broker, decision, action, state=state)
    closed = await closing.close_all(broker, held, cancel_orders=cancel_orders)
    return _finish(out, closed, state, account_id)


def _what_all(held: list[Position], cancel_orders: bool, named: int = 10) -> str:
    """`close 2 positions at market: sell 10 AAPL, buy 5 TSLA`, naming the first `named` of them."""
    from alpaca_cli.closing import closing_side

    sides = ", ".join(f"{closing_side(p)} {p.qty} {p.symbol}" for p in held[:named])
    more = f" and {len(held) - named} more" if len(held) > named else ""
    first = " after canceling every open order" if cancel_orders else ""
    return f"close {len(held)} position{'s' if len(held) != 1 else ''} at market{first}: {sides}{more}"


def _asked(action: str) -> bool:
    return typer.confirm(f"{action}?", default=False, err=True)


def _finish(out: Output, closed: Closed, state: Path | None, account_id: str | None) -> int:
    """Print what was closed, record it (`--state`): exit 0, 1 when the broker refused any, 6 when recording failed."""
    from alpaca_cli import follow
    from alpaca_cli.output import records

    if closed.recovered:
        out.message("the broker's answer was lost; found the closing order(s) it had placed: nothing was sent twice")
    elif closed.sends > 1:
        out.message("the broker's answer was lost and no closing order showed up in its orders: sent once more")
    lines = [records.close(c.symbol, c.order, c.error, recovered=closed.recovered) for c in closed.closings]
    if out.json:
        for line in lines:
            out.emit(line)
    else:
        _table(out, lines)
    for item in closed.closings:
        if item.order is not None:
            follow.record_new(state, account_id, item.order)
    return 0 if all(item.order is not None for item in closed.closings) else 1


def _table(out: Output, lines: list[dict[str, Any]]) -> None:
    from rich.table import Table

    table = Table(title="Closed")
    for column in ("symbol", "side", "qty", "status", "order id"):
        table.add_column(column)
    for r in lines:
        if r["ok"]:
            size = r["qty"] if r["qty"] is not None else f"${r['notional']}"
            table.add_row(r["symbol"], r["side"], str(size), r["status"], r["order_id"])
        else:
            table.add_row(r["symbol"], "", "", f"[red]failed: {r['error']}[/]", "")
    out.console.print(table)
