"""`alpaca-cli cancel`: cancel one order (by id or client id) or all open ones.

Same live guard as `submit`. `--all` shows what it is about to cancel and asks
first when a person is at the terminal (`--yes` skips the question). Canceling
is idempotent in effect: an order found already canceled after a lost answer
counts as canceled; an order that already ended otherwise (filled, expired)
is a clean "no" (exit 1).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from alpaca_cli.errors import BrokerRejected, UsageError
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
    from alpaca_cli.bridge import Broker
    from alpaca_cli.domain import Order
    from alpaca_cli.output import Output

CANCELED = frozenset({"canceled", "pending_cancel"})
CONCURRENT_CANCELS = 4
PREVIEW_ROWS = 20  # newest open orders shown before `cancel --all` asks


def cancel(
    order_id: Annotated[str | None, typer.Argument(help="The broker's order id.", show_default=False)] = None,
    client_order_id: Annotated[
        str | None, typer.Option("--client-order-id", help="Cancel the order with this client order id.")
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Cancel every open order (or those of --symbol).")] = False,
    symbol: Annotated[str | None, typer.Option("--symbol", help="With --all: only this symbol's orders.")] = None,
    yes: YesOption = False,
    live: LiveOption = False,
    output: OutputOption = None,
    debug: DebugOption = False,
    profile: ProfileOption = None,
    sandbox: SandboxOption = False,
    quiet: QuietOption = False,
) -> int:
    """Cancel an order by id, by client order id, or all open orders."""
    import asyncio

    from alpaca_cli import orders

    chosen = [name for name, given in (("ORDER_ID", order_id), ("--client-order-id", client_order_id)) if given]
    if all_:
        chosen.append("--all")
    if len(chosen) != 1:
        raise UsageError("say which order(s) to cancel: ORDER_ID, --client-order-id ID or --all (exactly one)")
    if symbol is not None and not all_:
        raise UsageError("--symbol only applies with --all")
    if order_id is not None:
        orders.check_order_id(order_id)
    if client_order_id is not None:
        orders.check_client_order_id(client_order_id)
    ticker = orders.check_symbol(symbol) if symbol is not None else None

    invocation = start(output, debug, profile, sandbox, live, quiet=quiet)
    out = invocation.out
    connection = invocation.connection
    if not connection.is_live:
        out.banner(connection.environment)
    decision = invocation.live_decision(yes=yes)

    async def run() -> int:
        from alpaca_cli.bridge import Broker

        async with Broker(connection) as broker:
            if all_:
                return await _cancel_all(broker, out, ticker, decision, yes)
            return await _cancel_one(broker, out, order_id, client_order_id, decision)

    return asyncio.run(run())


async def _cancel_one(
    broker: Broker, out: Output, order_id: str | None, client_order_id: str | None, decision: str
) -> int:
    from alpaca_cli.output import records

    if client_order_id is not None:
        found = await broker.order_by_client_id(client_order_id)
        if found is None:
            raise BrokerRejected(f"no order with client order id {client_order_id}", status=404)
    else:
        assert order_id is not None
        found = await _get(broker, order_id.strip())
    if found.status == "canceled":
        out.message(f"order {found.id} was already canceled")
        _show(out, [records.cancel(found, ok=True, status=found.status)])
        return 0
    if found.is_final:
        raise BrokerRejected(f"order {found.id} is already {found.status}: nothing to cancel", status=422)
    await preflight(broker, decision, f"cancel {_describe(found)} (order {found.id})", nothing="nothing was canceled")
    try:
        await broker.cancel_order(found.id)
    except BrokerRejected as refused:
        after = await broker.order(found.id)
        if after.status not in CANCELED:
            raise BrokerRejected(
                f"order {found.id} could not be canceled: it is {after.status} ({refused.message})",
                status=refused.status,
                code=refused.code,
            ) from refused
    after = await broker.order(found.id)
    _show(out, [records.cancel(after, ok=True, status=after.status)])
    return 0


async def _get(broker: Broker, order_id: str) -> Order:
    try:
        return await broker.order(order_id)
    except BrokerRejected as refused:
        if refused.status in (404, 422):  # Alpaca answers 422 for ids that are not UUIDs
            raise BrokerRejected(f"order {order_id} not found", status=404) from refused
        raise


async def _cancel_all(broker: Broker, out: Output, symbol: str | None, decision: str, yes: bool) -> int:
    import asyncio

    from alpaca_cli import orders
    from alpaca_cli.output import records

    listed = await broker.orders("open", symbols=[symbol] if symbol else None)
    where = f" for {symbol}" if symbol else ""
    if not listed:
        out.message(f"no open orders{where}: nothing to cancel")
        return 0
    _list_to_stderr(out, listed, where, asking=not yes)
    action = f"cancel {len(listed)} open order{'s' if len(listed) != 1 else ''}{where}"
    if decision == "confirm":
        await preflight(broker, decision, action, nothing="nothing was canceled")
    elif sys.stdin.isatty() and not yes and not typer.confirm(f"{action}?", default=False, err=True):
        raise orders.NotConfirmed("not confirmed: nothing was canceled")

    if symbol is None:
        # One request, as the broker offers it; orders placed after the
        # listing are canceled too, which is what "all" means.
        answers = {item["id"]: item["status"] for item in await broker.cancel_all()}
        by_id = {order.id: order for order in listed}
        lines = []
        for order_id, code in answers.items():
            order = by_id.get(order_id)
            ok = 200 <= code < 300
            lines.append(
                records.cancel(order, ok=ok, error=None if ok else f"broker answered {code}")
                if order is not None
                else records.cancel_unlisted(order_id, ok=ok)
            )
    else:
        gate = asyncio.Semaphore(CONCURRENT_CANCELS)

        async def one(order: Order) -> dict[str, Any]:
            async with gate:
                try:
                    await broker.cancel_order(order.id)
                except BrokerRejected as refused:
                    return records.cancel(order, ok=False, error=refused.message)
                return records.cancel(order, ok=True)

        lines = list(await asyncio.gather(*(one(order) for order in listed)))
    _show(out, lines)
    return 0 if all(line["ok"] for line in lines) else 1


def _describe(order: Order) -> str:
    size = order.qty if order.qty is not None else f"${order.notional}"
    return f"{order.side} {size} {order.symbol} {order.type.replace('_', ' ')}"


def _list_to_stderr(out: Output, listed: list[Order], where: str, *, asking: bool) -> None:
    """What is about to be canceled: on a terminal about to ask, the newest orders and a count
    (never 10,000 rows before acting); otherwise one line."""
    if not (asking and out.interactive):
        out.message(f"canceling {len(listed)} open order{'s' if len(listed) != 1 else ''}{where}")
        return
    from alpaca_cli.output import orders_table

    out.err.print(orders_table(listed, f"Open orders{where} ({len(listed)})", first=PREVIEW_ROWS))


def _show(out: Output, lines: list[dict[str, Any]]) -> None:
    if out.json:
        for line in lines:
            out.emit(line)
        return
    from rich.table import Table

    table = Table(title="Canceled")
    for column in ("order id", "symbol", "side", "type", "qty", "result"):
        table.add_column(column)
    for r in lines:
        result = (r.get("status") or "canceled") if r["ok"] else f"[red]failed: {r.get('error', '')}[/]"
        size = r.get("qty") if r.get("qty") is not None else f"${r.get('notional')}"
        table.add_row(r["order_id"], r.get("symbol", ""), r.get("side", ""), r.get("order_type", ""), str(size), result)
    out.console.print(table)
