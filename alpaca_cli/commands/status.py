"""`alpaca-cli status`: account, market clock, positions, orders and stream health."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from alpaca_cli.health import StreamName
from alpaca_cli.invocation import (
    DebugOption,
    OutputOption,
    ProfileOption,
    QuietOption,
    SandboxOption,
    start,
)

TABLE_ROWS = 50  # newest open orders drawn on a terminal; JSON lists every one


if TYPE_CHECKING:
    from alpaca_cli.domain import Account, Clock, Order, Position
    from alpaca_cli.output import Output


def status(
    positions: Annotated[bool, typer.Option("--positions", help="List every position.")] = False,
    orders: Annotated[
        bool, typer.Option("--orders", help="List open orders (the newest 50 on a terminal; every one with -o json).")
    ] = False,
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Exit 1 unless the account can trade and no stream is stale or disconnected "
            "(nor stopped or missing, for those named by --expect).",
        ),
    ] = False,
    expect: Annotated[
        list[StreamName] | None,
        typer.Option(
            "--expect",
            help="With --check: this stream must be running (repeat for both).",
            show_default=False,
            case_sensitive=False,
        ),
    ] = None,
    output: OutputOption = None,
    debug: DebugOption = False,
    profile: ProfileOption = None,
    sandbox: SandboxOption = False,
    quiet: QuietOption = False,
) -> int:
    """Account, market clock, positions and open orders, and the health of both streams."""
    import asyncio

    invocation = start(output, debug, profile, sandbox, quiet=quiet)
    report = asyncio.run(_gather(invocation.connection))
    from alpaca_cli import health

    processes = health.read_all(invocation.connection.environment)
    problems = _problems(report["account"], processes, set(expect or ()))
    if invocation.out.json:
        from alpaca_cli.output import records

        line = records.status(
            invocation.connection.environment,
            report["account"],
            report["clock"],
            report["positions"],
            report["orders"],
            processes,
            with_positions=positions,
            with_orders=orders,
        )
        invocation.out.emit(line)
    else:
        _render(invocation.out, invocation.connection.environment, report, processes, positions, orders, problems)
    if check and problems:
        for problem in problems:
            invocation.out.message(f"check failed: {problem}", style="red", essential=True)
        return 1
    return 0


async def _gather(connection: Any) -> dict[str, Any]:
    import asyncio

    from alpaca_cli.bridge import Broker

    async with Broker(connection) as broker:
        account, clock, positions, orders = await asyncio.gather(
            broker.account(), broker.clock(), broker.positions(), broker.orders("open")
        )
    return {"account": account, "clock": clock, "positions": positions, "orders": orders}


def _problems(
    account: Account, processes: dict[StreamName, list[dict[str, Any]]], expected: set[StreamName]
) -> list[str]:
    """What `--check` fails on: any process of a stream that is stale (it never said it stopped)
    or running disconnected; a stream `--expect` names that no process runs."""
    problems = []
    if account.status != "ACTIVE":
        problems.append(f"account status is {account.status}")
    for flag in ("trading_blocked", "account_blocked", "trade_suspended_by_user"):
        if getattr(account, flag):
            problems.append(f"account has {flag}")
    for name, records in processes.items():
        for record in records:
            pid = f" (pid {record['pid']})" if record.get("pid") else ""
            if record["state"] == "stale":
                problems.append(f"{name} stream is stale{pid}: its process is gone or silent without having stopped")
            elif record["state"] == "running" and not record.get("connected"):
                problems.append(f"{name} stream is running but disconnected{pid}")
        if name in expected and not any(r["state"] == "running" for r in records):
            state = records[0]["state"] if records else "not running"
            problems.append(f"{name} stream is {state}, but --expect says it should run")
    return problems


def _money(value: Any) -> str:
    return f"{value:,.2f}" if value is not None else "-"


def _pid(record: dict[str, Any], healths: list[dict[str, Any]]) -> str:
    """` (pid N)` when more than one process speaks for a stream, to tell their rows apart."""
    return f" (pid {record.get('pid')})" if len(healths) > 1 else ""


def _render(
    out: Output,
    environment: str,
    report: dict[str, Any],
    processes: dict[StreamName, list[dict[str, Any]]],
    with_positions: bool,
    with_orders: bool,
    problems: list[str],
) -> None:
    from rich.columns import Columns
    from rich.panel import Panel
    from rich.table import Table

    from alpaca_cli.output import orders_table, positions_table

    account: Account = report["account"]
    clock: Clock = report["clock"]
    positions: list[Position] = report["positions"]
    orders: list[Order] = report["orders"]

    summary = Table.grid(padding=(0, 2))
    summary.add_column(style="dim")
    summary.add_column()
    summary.add_row("account", f"{account.account_number} ({account.status})")
    summary.add_row("equity", _money(account.equity))
    summary.add_row("cash", _money(account.cash))
    summary.add_row("buying power", _money(account.buying_power))
    blocked = [f for f in ("trading_blocked", "account_blocked", "transfers_blocked") if getattr(account, f)]
    summary.add_row("blocked", ", ".join(blocked) if blocked else "no")
    summary.add_row("positions", str(len(positions)))
    summary.add_row("open orders", str(len(orders)))

    market = Table.grid(padding=(0, 2))
    market.add_column(style="dim")
    market.add_column()
    market.add_row("market", "[green]open[/]" if clock.is_open else "[yellow]closed[/]")
    market.add_row(
        "next close" if clock.is_open else "next open", str(clock.next_close if clock.is_open else clock.next_open)
    )
    for name, records in processes.items():
        for record in records or [None]:
            market.add_row(name + (_pid(record, records) if record else ""), _stream_text(record))

    out.console.print(
        Columns(
            [
                Panel(
                    summary, title=f"Account · {environment}", border_style="red" if environment == "live" else "blue"
                ),
                Panel(market, title="Market and streams"),
            ]
        )
    )
    if with_positions and positions:
        out.console.print(positions_table(positions, "Positions"))
    if with_orders and orders:
        out.console.print(orders_table(orders, f"Open orders ({len(orders)})", first=TABLE_ROWS))
    if problems:
        out.console.print("[red]" + "; ".join(problems) + "[/]")


def _stream_text(stream: dict[str, Any] | None) -> str:
    if stream is None:
        return "[dim]not running[/]"
    if stream.get("state") == "stopped":
        return f"[dim]stopped ({stream.get('age_s', '?')} s ago)[/]"
    if stream.get("stale"):
        return f"[yellow]stale ({stream.get('age_s', '?')} s old)[/]"
    state = "[green]connected[/]" if stream.get("connected") else "[red]disconnected[/]"
    text = f"{state}, {stream.get('reconnects', 0)} reconnects"
    reconciled = stream.get("reconcile_age_s")  # trade-updates: age when the health was written
    if isinstance(reconciled, int | float):
        text += f", reconciled {reconciled + float(stream.get('age_s') or 0):.0f} s ago"
    return text
