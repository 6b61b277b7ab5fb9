"""`alpaca-cli quote`: the latest trade, quote and minute bar of each symbol (Alpaca's snapshot).

One request for all the stock symbols and one for all the crypto pairs,
whatever their number; a script that wants "the last price of AAPL" reads
`.trade.price` of one line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from alpaca_cli.choices import Feed
from alpaca_cli.invocation import DebugOption, OutputOption, ProfileOption, QuietOption, SandboxOption, start

if TYPE_CHECKING:
    from alpaca_cli.domain import MarketSnapshot


def quote(
    symbols: Annotated[
        list[str], typer.Argument(help="Stock symbols or crypto pairs, e.g. AAPL BTC/USD.", show_default=False)
    ],
    feed: Annotated[Feed, typer.Option(help="Stock feed: iex (free plan) or sip (paid plan).")] = Feed.iex,
    output: OutputOption = None,
    debug: DebugOption = False,
    profile: ProfileOption = None,
    sandbox: SandboxOption = False,
    quiet: QuietOption = False,
) -> int:
    """Latest trade, bid/ask and minute bar per symbol; exit 1 when the broker has nothing for one of them."""
    import asyncio

    from alpaca_cli.symbols import data_symbols

    wanted = data_symbols(symbols, "alpaca-cli quote AAPL BTC/USD")
    invocation = start(output, debug, profile, sandbox, quiet=quiet)

    async def run() -> list[MarketSnapshot]:
        from alpaca_cli.bridge import Broker

        async with Broker(invocation.connection) as broker:
            return await broker.market_snapshots(wanted, feed=feed.value)

    found = asyncio.run(run())
    out = invocation.out
    if out.json:
        from alpaca_cli.output import records

        for snap in found:
            out.emit(records.snapshot(snap))
    elif found:
        _table(out, found)
    missing = [symbol for symbol in wanted if symbol not in {snap.symbol for snap in found}]
    if missing:
        out.warn(f"no market data for {', '.join(missing)} (unknown symbol, or nothing traded yet)")
        return 1
    return 0


def _table(out: Any, found: list[MarketSnapshot]) -> None:
    from rich import box
    from rich.table import Table

    from alpaca_cli.output import price_text, quantity_text

    # No vertical rules, no edge padding: the eight columns fit 80 columns.
    table = Table(title="latest · times in UTC", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for column in ("symbol", "last", "size", "bid", "ask", "spread", "volume", "time"):
        table.add_column(column, justify="left" if column == "symbol" else "right", no_wrap=True)
    for snap in found:
        trade, book, bar = snap.trade, snap.quote, snap.bar
        cells = [
            price_text(trade.price) if trade else "",
            quantity_text(trade.size) if trade else "",
            price_text(book.bid) if book else "",
            price_text(book.ask) if book else "",
            price_text(book.ask - book.bid, like=book.bid) if book else "",
            quantity_text(bar.volume) if bar else "",
            trade.timestamp.strftime("%H:%M:%S") if trade else "",
        ]
        table.add_row(snap.symbol, *cells)
    out.console.print(table)
