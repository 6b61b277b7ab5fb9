"""`alpaca-cli clock` and `alpaca-cli calendar`: when the market is open."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from alpaca_cli.errors import UsageError
from alpaca_cli.invocation import DebugOption, OutputOption, ProfileOption, QuietOption, SandboxOption, start

if TYPE_CHECKING:
    from datetime import date

    from alpaca_cli.domain import CalendarDay, Clock


def clock(
    output: OutputOption = None,
    debug: DebugOption = False,
    profile: ProfileOption = None,
    sandbox: SandboxOption = False,
    quiet: QuietOption = False,
) -> int:
    """The market clock: open or closed now, and the next open and close."""
    import asyncio

    invocation = start(output, debug, profile, sandbox, quiet=quiet)

    async def run() -> Clock:
        from alpaca_cli.bridge import Broker

        async with Broker(invocation.connection) as broker:
            return await broker.clock()

    now = asyncio.run(run())
    out = invocation.out
    if out.json:
        from alpaca_cli.output import records

        out.emit(records.clock(now))
        return 0
    from rich.table import Table

    from alpaca_cli.text import rfc3339

    grid = Table.grid(padding=(0, 2))
    grid.add_row("market", "[green]open[/]" if now.is_open else "[yellow]closed[/]")
    grid.add_row("now", rfc3339(now.timestamp))
    grid.add_row("next open", rfc3339(now.next_open))
    grid.add_row("next close", rfc3339(now.next_close))
    out.console.print(grid)
    return 0


def calendar(
    start_day: Annotated[
        str | None, typer.Option("--start", help="First day (YYYY-MM-DD; default today).", show_default=False)
    ] = None,
    end_day: Annotated[
        str | None, typer.Option("--end", help="Last day (YYYY-MM-DD; default --start + 30 days).", show_default=False)
    ] = None,
    output: OutputOption = None,
    debug: DebugOption = False,
    profile: ProfileOption = None,
    sandbox: SandboxOption = False,
    quiet: QuietOption = False,
) -> int:
    """Trading days and their hours (New York time) from --start to --end."""
    import asyncio
    from datetime import UTC, datetime, timedelta

    first = _day(start_day, "--start") if start_day is not None else datetime.now(UTC).date()
    last = _day(end_day, "--end") if end_day is not None else first + timedelta(days=30)
    if last < first:
        raise UsageError(f"--end {last} is before --start {first}")
    invocation = start(output, debug, profile, sandbox, quiet=quiet)

    async def run() -> list[CalendarDay]:
        from alpaca_cli.bridge import Broker

        async with Broker(invocation.connection) as broker:
            return await broker.calendar(first, last)

    days = asyncio.run(run())
    out = invocation.out
    if out.json:
        from alpaca_cli.output import records

        for day in days:
            out.emit(records.calendar_day(day))
        return 0
    from rich.table import Table

    table = Table(title=f"Trading days {first} to {last} (New York time)")
    for column in ("date", "day", "open", "close"):
        table.add_column(column)
    for day in days:
        table.add_row(day.date.isoformat(), day.date.strftime("%a"), day.open, day.close)
    out.console.print(table)
    return 0


def _day(text: str, flag: str) -> date:
    from datetime import date

    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"{flag} {text!r} is not a date: use YYYY-MM-DD") from None
