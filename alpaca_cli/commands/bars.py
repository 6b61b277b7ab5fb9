"""`alpaca-cli bars`: historical bars of stocks and crypto pairs, every page of the range.

The bars come through `Broker.bar_pages`, the same paged call `stream bars`
uses to fill a gap of its stream, and each page is written as it arrives: an
export of many days and symbols never waits for (or holds) the whole range.
"""

from __future__ import annotations

import heapq
from typing import TYPE_CHECKING, Annotated, Any

import typer

from alpaca_cli.choices import Feed, Timeframe
from alpaca_cli.errors import UsageError
from alpaca_cli.invocation import (
    DebugOption,
    ExportChoice,
    OutputChoice,
    ProfileOption,
    QuietOption,
    SandboxOption,
    start,
)

if TYPE_CHECKING:
    from datetime import datetime

    from alpaca_cli.domain import Bar
    from alpaca_cli.invocation import Invocation

COLUMNS = ("symbol", "t", "o", "h", "l", "c", "v", "n", "vw")
TABLE_ROWS = 50
SOURCE = "history"  # the `source` of a bar line that no stream delivered


def bars(
    symbols: Annotated[
        list[str], typer.Argument(help="Stock symbols or crypto pairs, e.g. AAPL MSFT BTC/USD.", show_default=False)
    ],
    since: Annotated[
        str, typer.Option("--start", help="From this time (RFC 3339 or a date, UTC), inclusive.", show_default=False)
    ],
    until: Annotated[
        str | None,
        typer.Option(
            "--end", help="Until this time (RFC 3339 or a date, UTC), inclusive; default now.", show_default=False
        ),
    ] = None,
    timeframe: Annotated[Timeframe, typer.Option(help="The width of each bar.")] = Timeframe.minute,
    feed: Annotated[Feed, typer.Option(help="Stock feed: iex (free plan) or sip (paid plan).")] = Feed.iex,
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
    """Historical bars, oldest first per symbol, paged through the whole range."""
    import asyncio

    from alpaca_cli.orders import parse_time
    from alpaca_cli.symbols import data_symbols

    wanted = data_symbols(symbols, "alpaca-cli bars AAPL --start 2026-11-27")
    begin = parse_time(since, "--start")
    end = parse_time(until, "--end") if until is not None else None
    if end is not None and begin > end:
        raise UsageError(f"--start {since} is not before --end {until}: the range is empty")
    csv = output is ExportChoice.csv
    invocation = start(
        None if output is None or csv else OutputChoice(output.value), debug, profile, sandbox, quiet=quiet
    )
    request = (wanted, begin, end, timeframe.value, feed.value)
    return asyncio.run(_export(invocation, request, csv=csv))


async def _export(invocation: Invocation, request: tuple[Any, ...], *, csv: bool) -> int:
    from alpaca_cli.bridge import Broker
    from alpaca_cli.output.records import BarLines

    symbols, begin, end, timeframe, feed = request
    out = invocation.out
    # A terminal shows the newest rows over all symbols (pages come grouped by symbol), not a whole export.
    kept: list[tuple[datetime, int, Bar]] = []
    total = 0
    header = True
    line = BarLines()
    async with Broker(invocation.connection) as broker:
        async for page in broker.bar_pages(symbols, begin, end, timeframe=timeframe, feed=feed):
            if csv:
                if header:  # after the first answer: a failure leaves stdout empty
                    out.csv_rows([COLUMNS])
                    header = False
                out.csv_rows(_row(bar) for bar in page)
            elif out.json:
                out.write_lines(line(bar, SOURCE) for bar in page)
            else:
                for bar in page:
                    total += 1
                    heapq.heappush(kept, (bar.timestamp, total, bar))
                    if len(kept) > TABLE_ROWS:
                        heapq.heappop(kept)
    if not csv and not out.json:
        _table(out, [bar for _, _, bar in sorted(kept)], timeframe)
        if total > len(kept):
            out.message(f"the last {len(kept)} of {total} bars; -o json or -o csv for all of them")
    return 0


def _row(bar: Bar) -> tuple[Any, ...]:
    return (bar.symbol, bar.timestamp, bar.open, bar.high, bar.low, bar.close, bar.volume, bar.trade_count, bar.vwap)


def _table(out: Any, found: list[Bar], timeframe: str) -> None:
    if not found:
        out.message("no bars in this range")
        return
    from rich.table import Table

    from alpaca_cli.output import price_text, quantity_text

    table = Table(title=f"{timeframe} bars · times in UTC")
    for column in ("symbol", "time", "open", "high", "low", "close", "volume"):
        table.add_column(column, justify="left" if column in ("symbol", "time") else "right", no_wrap=True)
    for bar in found:
        table.add_row(
            bar.symbol,
            _when(bar.timestamp),
            *(price_text(value) for value in (bar.open, bar.high, bar.low, bar.close)),
            quantity_text(bar.volume),
        )
    out.console.print(table)


def _when(moment: datetime) -> str:
    """Minutes as such; seconds only where a bar starts inside a minute (the sandbox's short bars)."""
    return moment.strftime("%Y-%m-%d %H:%M" if moment.second == moment.microsecond == 0 else "%Y-%m-%d %H:%M:%S")
