"""`alpaca-cli activities`: fills, dividends, deposits and the rest, paged through the range.

Besides the common outputs it writes CSV (`-o csv`), one row per activity
with fixed columns, for spreadsheets and accounting (`fills.csv`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from alpaca_cli.errors import UsageError
from alpaca_cli.invocation import (
    DebugOption,
    ExportChoice,
    OutputChoice,
    ProfileOption,
    QuietOption,
    SandboxOption,
    complete_list,
    start,
)

if TYPE_CHECKING:
    from alpaca_cli.domain import Activity

# Alpaca's activity types (https://docs.alpaca.markets/reference/getaccountactivities).
ACTIVITY_TYPES = frozenset(
    {
        *("FILL", "TRANS", "MISC", "ACATC", "ACATS", "CFEE", "CSD", "CSW", "DIV", "DIVCGL", "DIVCGS", "DIVFEE"),
        *("DIVFT", "DIVNRA", "DIVROC", "DIVTW", "DIVTXEX", "FEE", "INT", "INTNRA", "INTTW", "JNL", "JNLC", "JNLS"),
        *("MA", "NC", "OPASN", "OPCA", "OPCSH", "OPEXC", "OPEXP", "OPTRD", "PTC", "PTR", "REORG", "SPIN", "SPLIT"),
        *("SWP", "VOF", "WH"),
    }
)


def activities(
    types: Annotated[
        str | None,
        typer.Option(
            "--type",
            help="Only these activity types, e.g. FILL,DIV,CSD.",
            show_default=False,
            autocompletion=complete_list(sorted(ACTIVITY_TYPES)),
        ),
    ] = None,
    after: Annotated[
        str | None, typer.Option("--after", help="After this time (RFC 3339 or a date, UTC).", show_default=False)
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="Until this time (RFC 3339 or a date, UTC).", show_default=False)
    ] = None,
    on: Annotated[str | None, typer.Option("--date", help="Only this day (YYYY-MM-DD).", show_default=False)] = None,
    output: Annotated[
        ExportChoice | None,
        typer.Option(
            "--output", "-o", help="auto, table, json or csv (a header and one row each).", show_default=False
        ),
    ] = None,
    debug: DebugOption = False,
    profile: ProfileOption = None,
    sandbox: SandboxOption = False,
    quiet: QuietOption = False,
) -> int:
    """Account activities (fills, dividends, transfers, fees), oldest first, every page of the range."""
    import asyncio
    from datetime import date

    from alpaca_cli import orders

    wanted = None
    if types is not None:
        wanted = [part.strip().upper() for part in types.split(",")]
        unknown = [part for part in wanted if part not in ACTIVITY_TYPES]
        if unknown:
            raise UsageError(f"unknown activity type {unknown[0]!r}: e.g. FILL, DIV, CSD, FEE, INT, JNLC")
    since = orders.parse_time(after, "--after") if after is not None else None
    before = orders.parse_time(until, "--until") if until is not None else None
    day = None
    if on is not None:
        if since is not None or before is not None:
            raise UsageError("--date cannot be combined with --after or --until")
        try:
            day = date.fromisoformat(on.strip())
        except ValueError:
            raise UsageError(f"--date {on!r} is not a date: use YYYY-MM-DD") from None
    if since is not None and before is not None and since >= before:
        raise UsageError(f"--after {after} is not before --until {until}: the range is empty")
    csv = output is ExportChoice.csv
    invocation = start(
        None if output is None or csv else OutputChoice(output.value), debug, profile, sandbox, quiet=quiet
    )

    async def run() -> list[Activity]:
        from alpaca_cli.bridge import Broker

        async with Broker(invocation.connection) as broker:
            return await broker.activities(wanted, after=since, until=before, on=day)

    found = asyncio.run(run())
    out = invocation.out
    from alpaca_cli.output import records

    if csv:
        out.csv(records.ACTIVITY_COLUMNS, (records.activity_row(item) for item in found))
    elif out.json:
        for item in found:
            out.emit(records.activity(item))
    elif not found:
        out.message("no activities")
    else:
        _table(out, found)
    return 0


def _table(out: Any, found: list[Activity]) -> None:
    from rich.table import Table

    table = Table(title="Activities")
    for column in ("when", "type", "symbol", "side", "qty", "price", "amount", "description"):
        table.add_column(column)
    for a in found:
        when = a.at.strftime("%Y-%m-%d %H:%M:%S") if a.at else (a.date.isoformat() if a.date else "")
        cells = (a.symbol, a.side, a.qty, a.price, a.net_amount, a.description)
        table.add_row(when, a.activity_type, *("" if c is None else str(c) for c in cells))
    out.console.print(table)
