"""`alpaca-cli stream bars|quotes|trades`: live market data, a table on a terminal or JSON Lines when piped.

Several kinds at once are one comma word (`stream bars,quotes AAPL`), over one
connection per feed (stocks on `--feed`, crypto pairs on Alpaca's crypto
stream): the bridge's `MarketDataStream` (bounded queue, lifecycle events).

Bars are gap-free: after every reconnection (and when the queue overflowed)
the bars the stream missed are fetched from the historical API and printed in
order, marked `"source":"backfill"`; `core.bars.BarGaps` decides what to fetch
and what to print, so each (symbol, minute) is printed once. `--since T`
starts with the history from T.

This module renders, reports connection changes on stderr (and with
`--events` as `{"type":"stream",...}` lines), keeps the market-data health
file fresh, and stops cleanly on `--count`, `--duration`, SIGINT, SIGTERM, or
when the reader of a pipe goes away. Piped output goes through
`Output.line_sink()`, which waits for a slow reader without blocking the event
loop, so items pile up in the bridge's bounded queue (dropped and counted
there) instead of behind a blocked loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import click
import typer
from typer.core import TyperGroup

from alpaca_cli.choices import Feed
from alpaca_cli.errors import UsageError
from alpaca_cli.invocation import (
    DebugOption,
    OutputOption,
    ProfileOption,
    QuietOption,
    SandboxOption,
    start,
)

if TYPE_CHECKING:
    from datetime import datetime

    from alpaca_cli.bridge import MarketDataStream, StreamEvent
    from alpaca_cli.core.bars import BarGaps, Step
    from alpaca_cli.domain import Bar, Quote, Trade
    from alpaca_cli.invocation import Invocation
    from alpaca_cli.runner import Limits, Runner

KINDS = ("bars", "quotes", "trades")  # = bridge.marketdata.KINDS, repeated so that --help loads no SDK
_KINDS_KEY = "alpaca_cli.stream_kinds"


class _KindsGroup(TyperGroup):
    """Resolves a comma word of kinds (`bars,quotes`) to the command of its first kind, carrying all of them."""

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        word = args[0] if args else ""
        if "," in word:
            kinds = [part.strip().lower() for part in word.split(",") if part.strip()]
            unknown = [kind for kind in kinds if kind not in KINDS]
            if unknown or not kinds:
                raise UsageError(f"unknown market data {word!r}: use bars, quotes, trades or a comma list of them")
            ctx.meta[_KINDS_KEY] = tuple(kind for kind in KINDS if kind in kinds)
            return super().resolve_command(ctx, [kinds[0], *args[1:]])
        return super().resolve_command(ctx, args)


app = typer.Typer(
    name="stream",
    cls=_KindsGroup,
    help="Live market data: bars, quotes, trades, or several at once (stream bars,quotes AAPL).",
    no_args_is_help=True,
)

STALE_AFTER = 150.0  # 2.5 one-minute bars
TABLE_REFRESH = 0.25  # seconds between redraws of the live table

SymbolsArgument = Annotated[
    list[str], typer.Argument(help="Stock symbols or crypto pairs, e.g. AAPL MSFT BTC/USD.", show_default=False)
]
FeedOption = Annotated[Feed, typer.Option(help="Stock feed: iex (free plan) or sip (all exchanges, paid plan).")]
CountOption = Annotated[int | None, typer.Option(min=1, help="Stop after N lines (exit 0).", show_default=False)]
DurationOption = Annotated[
    float | None, typer.Option(min=0.0, help="Stop after S seconds (exit 0).", show_default=False)
]
EventsOption = Annotated[
    bool, typer.Option("--events", help='Also write connection changes as {"type":"stream",...} lines.')
]
StaleOption = Annotated[
    float,
    typer.Option(min=0.0, help="While the market is open, reconnect after S seconds without data (0: never)."),
]
SinceOption = Annotated[
    str | None,
    typer.Option(
        "--since",
        help="Bars: start with the history from this time (RFC 3339 or a date, UTC), e.g. where a crashed run stopped.",
        show_default=False,
    ),
]


@app.command("bars")
def bars(
    symbols: SymbolsArgument,
    feed: FeedOption = Feed.iex,
    since: SinceOption = None,
    count: CountOption = None,
    duration: DurationOption = None,
    events: EventsOption = False,
    stale_after: StaleOption = STALE_AFTER,
    output: OutputOption = None,
    debug: DebugOption = False,
    profile: ProfileOption = None,
    sandbox: SandboxOption = False,
    quiet: QuietOption = False,
) -> int:
    """Minute bars, gap-free across reconnects (missed ones fetched, "source":"backfill")."""
    options = _options("bars", symbols, feed, since, count, duration, events, stale_after)
    return _main(options, output, debug, profile, sandbox, quiet)


@app.command("quotes")
def quotes(
    symbols: SymbolsArgument,
    feed: FeedOption = Feed.iex,
    since: SinceOption = None,
    count: CountOption = None,
    duration: DurationOption = None,
    events: EventsOption = False,
    stale_after: StaleOption = STALE_AFTER,
    output: OutputOption = None,
    debug: DebugOption = False,
    profile: ProfileOption = None,
    sandbox: SandboxOption = False,
    quiet: QuietOption = False,
) -> int:
    """Top-of-book quotes (bid, ask, sizes); a live table shows the spread."""
    options = _options("quotes", symbols, feed, since, count, duration, events, stale_after)
    return _main(options, output, debug, profile, sandbox, quiet)


@app.command("trades")
def trades(
    symbols: SymbolsArgument,
    feed: FeedOption = Feed.iex,
    since: SinceOption = None,
    count: CountOption = None,
    duration: DurationOption = None,
    events: EventsOption = False,
    stale_after: StaleOption = STALE_AFTER,
    output: OutputOption = None,
    debug: DebugOption = False,
    profile: ProfileOption = None,
    sandbox: SandboxOption = False,
    quiet: QuietOption = False,
) -> int:
    """Trades as they print (price, size, id)."""
    options = _options("trades", symbols, feed, since, count, duration, events, stale_after)
    return _main(options, output, debug, profile, sandbox, quiet)


@dataclass(frozen=True, slots=True)
class _Options:
    kinds: tuple[str, ...]
    symbols: list[str]
    feed: str
    since: datetime | None
    limits: Limits
    events: bool
    stale_after: float | None


def _options(
    kind: str,
    symbols: list[str],
    feed: Feed,
    since: str | None,
    count: int | None,
    duration: float | None,
    events: bool,
    stale_after: float,
) -> _Options:
    """The command's options, checked before anything is sent."""
    from datetime import UTC, datetime

    from alpaca_cli.orders import parse_time
    from alpaca_cli.runner import Limits
    from alpaca_cli.symbols import data_symbols

    limits = Limits(count=count, duration=duration)  # --duration counts from here: the command's start
    kinds = click.get_current_context().meta.get(_KINDS_KEY, (kind,))
    if since is not None and "bars" not in kinds:
        raise UsageError("--since fills in bars only: use it with stream bars (or bars,quotes ...)")
    start = None if since is None else parse_time(since, "--since")
    if start is not None and start > datetime.now(UTC):
        raise UsageError(f"--since {since} is in the future: give the time of the last bar you have")
    return _Options(
        kinds=kinds,
        symbols=data_symbols(symbols, f"alpaca-cli stream {','.join(kinds)} AAPL MSFT"),
        feed=feed.value,
        since=start,
        limits=limits,
        events=events,
        stale_after=stale_after or None,
    )


def _main(options: _Options, output: Any, debug: bool, profile: str | None, sandbox: bool, quiet: bool) -> int:
    import asyncio

    invocation = start(output, debug, profile, sandbox, quiet=quiet)
    return asyncio.run(_run(invocation, options))


# ---------------------------------------------------------------------- the table


class _Board:
    """What the live table shows per symbol: the last bar (and the close before it), the last trade and quote."""

    def __init__(self, symbols: list[str], kinds: tuple[str, ...] = ("bars",)) -> None:
        self.symbols = symbols
        self.kinds = kinds
        self.last: dict[str, Bar] = {}
        self.previous_close: dict[str, float] = {}
        self.trade: dict[str, Trade] = {}
        self.quote: dict[str, Quote] = {}

    def add(self, item: Bar | Quote | Trade) -> None:
        from alpaca_cli.domain import Bar, Quote

        if isinstance(item, Bar):
            self.add_bar(item)
        elif isinstance(item, Quote):
            self.quote[item.symbol] = item
        else:
            self.trade[item.symbol] = item

    def add_bar(self, bar: Bar) -> None:
        before = self.last.get(bar.symbol)
        if bar.updated and before is not None and before.timestamp != bar.timestamp:
            return  # a correction of an older minute: the row shows the newest
        if before is not None and before.timestamp != bar.timestamp:
            self.previous_close[bar.symbol] = before.close
        self.last[bar.symbol] = bar

    def render(self, handles: list[MarketDataStream], now: datetime, *, stopped: bool = False) -> Any:
        from rich import box
        from rich.console import Group
        from rich.table import Table

        feeds = " + ".join(handle.feed for handle in handles)
        # No vertical rules and no edge padding: nine columns fit 80 columns without wrapping a cell.
        table = Table(
            title=f"{','.join(self.kinds)} · {feeds} · times in UTC",
            expand=False,
            box=box.SIMPLE_HEAD,
            pad_edge=False,
            collapse_padding=True,
        )
        columns = self._columns()
        for column in columns:
            table.add_column(column, justify="left" if column in ("symbol", "time") else "right", no_wrap=True)
        for symbol in self.symbols:
            table.add_row(*self._row(symbol, now, len(columns)))
        return Group(table, *(_footer(handle, stopped, len(handles) > 1) for handle in handles))

    def _columns(self) -> tuple[str, ...]:
        if self.kinds == ("bars",):
            return ("symbol", "time", "open", "high", "low", "close", "volume", "change", "age")
        columns = ["symbol", "time"]
        if "trades" in self.kinds or "quotes" not in self.kinds:
            columns += ["last", "size"] if "bars" not in self.kinds else ["last"]
        if "quotes" in self.kinds:
            columns += ["bid", "ask", "spread"]
        if "bars" in self.kinds:
            columns += ["close", "volume"]
        return (*columns, "age")

    def _row(self, symbol: str, now: datetime, width: int) -> list[Any]:
        from rich.text import Text

        from alpaca_cli.output import price_text, quantity_text

        bar, trade, quote = self.last.get(symbol), self.trade.get(symbol), self.quote.get(symbol)
        moments = [item.timestamp for item in (bar, trade, quote) if item is not None]
        if not moments:
            return [symbol, "waiting…", *[""] * (width - 2)]
        newest = max(moments)
        cells: dict[str, Any] = {"symbol": symbol, "time": newest.strftime("%H:%M:%S")}
        if bar is not None:
            cells.update(
                open=price_text(bar.open),
                high=price_text(bar.high),
                low=price_text(bar.low),
                close=price_text(bar.close),
                volume=quantity_text(bar.volume),
            )
            before = self.previous_close.get(symbol)
            if before:
                delta = bar.close - before
                style = "green" if delta >= 0 else "red"
                cells["change"] = Text(f"{delta / before:+.2%}", style=style)  # 80 columns hold a coin's row
        if trade is not None:
            cells.update(last=price_text(trade.price), size=quantity_text(trade.size))
        if quote is not None:
            cells.update(
                bid=price_text(quote.bid),
                ask=price_text(quote.ask),
                spread=price_text(quote.ask - quote.bid, like=quote.bid),
            )
        cells["age"] = f"{(now - newest).total_seconds():.0f}s"
        return [cells.get(column, "") for column in self._columns()]


def _footer(handle: MarketDataStream, stopped: bool, labelled: bool) -> Any:
    """One connection's line under the table; `labelled` names its feed (stocks and crypto: two lines)."""
    from rich.text import Text

    h = handle.health
    if stopped:
        state = Text("stopped", style="dim")
    else:
        state = Text("connected", style="green") if h.connected else Text("disconnected", style="red")
    moment = h.connected_since if h.connected else h.last_disconnect_at
    since = f" since {moment:%H:%M:%S}" if moment and not stopped else ""
    queued = handle.items.qsize()
    return Text.assemble(
        f"{handle.feed} " if labelled else "",
        state,
        f"{since} · reconnects {h.reconnects} · received {h.received} · dropped {h.dropped}",
        f" · queue {queued}/{handle.queue_size}" if queued else "",  # 80 columns: only when it matters
        style="dim",
        no_wrap=True,
        overflow="ellipsis",
    )


# ---------------------------------------------------------------------------- run


def _describe(event: StreamEvent, handle: MarketDataStream) -> str | None:
    """The one stderr line for a connection change (None for a failure: main prints that)."""
    if event.event == "connected":
        if event.reconnects:
            return f"{event.stream} stream reconnected (reconnect {event.reconnects})"
        return f"{event.stream} stream connected (feed {handle.feed}, {len(handle.symbols)} symbol(s))"
    if event.event == "disconnected":
        return f"{event.stream} stream disconnected: {event.reason}; reconnecting"
    if event.event == "stale":
        return f"{event.stream} stream stale: {event.reason}; forcing a reconnect"
    return None


async def _run(invocation: Invocation, options: _Options) -> int:
    import asyncio

    from alpaca_cli.bridge import Broker
    from alpaca_cli.runner import Runner
    from alpaca_cli.symbols import is_crypto

    groups = [
        group
        for group in (
            [s for s in options.symbols if not is_crypto(s)],
            [s for s in options.symbols if is_crypto(s)],
        )
        if group
    ]
    async with Runner(options.limits) as run, Broker(invocation.connection) as broker:
        connecting = asyncio.ensure_future(
            asyncio.gather(
                *(broker.market_data_connect(group, kinds=options.kinds, feed=options.feed) for group in groups)
            )
        )
        await run.wait(connecting)
        if not connecting.done():
            connecting.cancel()
            await asyncio.gather(connecting, return_exceptions=True)
            return run.exit_code
        handles: list[MarketDataStream] = connecting.result()
        if options.stale_after:
            stocks = [handle for handle in handles if handle.feed != "crypto"]  # crypto trades around the clock
            stocks_open = await _market_open(broker, invocation) if stocks else True
            for handle in handles:
                handle.set_stale_after(options.stale_after if stocks_open or handle not in stocks else None)
        await _Session(invocation, options, broker, handles, run).run()
    return run.exit_code


async def _market_open(broker: Any, invocation: Invocation) -> bool:
    """Checked once: a closed market sends no bars, so silence then is no sign of a dead socket."""
    from alpaca_cli.errors import CliError

    try:
        return bool((await broker.clock()).is_open)
    except CliError as error:
        invocation.out.warn(f"cannot read the market clock ({error.line()}); assuming the market is open")
        return True


class _Session:
    """One running `stream`: a reader per connection, the lifecycle watchers, the backfills and the health writer."""

    def __init__(
        self,
        invocation: Invocation,
        options: _Options,
        broker: Any,
        handles: list[MarketDataStream],
        run: Runner,
    ) -> None:
        from alpaca_cli.core.bars import BarGaps
        from alpaca_cli.health import Publisher, StreamName
        from alpaca_cli.output.records import BarLines, QuoteLines, TradeLines

        self.out = invocation.out
        self.options = options
        self.broker = broker
        self.handles = handles
        self.runner = run
        self.sink = self.out.line_sink()
        self.board = _Board(list(options.symbols), options.kinds)
        self.health = Publisher(
            invocation.connection.environment, StreamName.market_data, self._health_record, self.out.warn
        )
        self.gaps = {id(h): BarGaps(h.symbols, since=options.since) for h in handles if "bars" in h.kinds}
        self.failed_fetches = 0
        self._fetches: set[Any] = set()
        self._fetch_error: Any = None  # a future the run waits on: a backfill's unexpected error ends it
        self._pending: list[str] = []  # JSON lines emitted, not written yet
        self._bar_line, self._quote_line, self._trade_line = BarLines(), QuoteLines(), TradeLines()

    async def run(self) -> None:
        import asyncio

        if self.out.json:
            await self.sink.open()
            self.runner.watch(self.sink.gone)
        live = None
        if not self.out.json:
            live = self.out.start_live(self.board.render(self.handles, _now()), auto_refresh=False)
        self._fetch_error = asyncio.get_running_loop().create_future()
        try:
            async with self.health:
                # The watchers start first, so "connected" is reported before any item already queued.
                tasks = [self._fetch_error]
                tasks += [asyncio.create_task(self._watch_lifecycle(handle)) for handle in self.handles]
                tasks += [asyncio.create_task(self._pump(handle)) for handle in self.handles]
                if live is not None:
                    tasks.append(asyncio.create_task(self._redraw(live)))
                try:
                    await self.runner.wait(*tasks)
                finally:
                    for task in [*tasks, *self._fetches]:
                        task.cancel()
                    await asyncio.gather(*tasks, *self._fetches, return_exceptions=True)
                    for handle in self.handles:
                        await handle.stop()
        finally:
            if live is not None:
                self.out.stop_live(self.board.render(self.handles, _now(), stopped=True))
            await self.sink.close()

    # -- items ---------------------------------------------------------------------------

    async def _pump(self, handle: MarketDataStream) -> None:
        """Take the handle's items in order, meeting its marks (reconnections, lost bars) at their place.

        Whatever is queued is taken at once and written with one write: a burst
        costs one system call per batch, not one per line.
        """
        from alpaca_cli.domain import Bar, Quote

        queue, marks = handle.items, handle.marks
        gaps = self.gaps.get(id(handle))
        json_mode = self.out.json
        quote_line, trade_line, emit = self._quote_line, self._trade_line, self._emit
        taken = 0  # items taken so far: the place of the next one in the handle's order

        def meet_marks() -> None:
            while marks and marks[0].after <= taken:
                mark = marks.popleft()
                if gaps is not None:
                    self._take(gaps.connected(mark.at) if mark.event == "connected" else gaps.lost(), gaps)

        while True:
            meet_marks()  # before waiting: a connection with nothing after it yet (--since, a closed market)
            batch = [await queue.get()]
            batch += [queue.get_nowait() for _ in range(queue.qsize())]
            for item in batch:
                meet_marks()
                taken += 1
                if isinstance(item, Bar):
                    if gaps is not None:
                        self._take(gaps.live(item), gaps)
                elif isinstance(item, Quote):
                    emit(quote_line(item) if json_mode else item)
                else:
                    emit(trade_line(item) if json_mode else item)
            await self._flush()

    def _take(self, step: Step, gaps: BarGaps) -> None:
        """Print what the ledger says, and start the fetch it asks for."""
        import asyncio

        for bar, source in step.lines:
            self._emit(self._bar_line(bar, source) if self.out.json else bar)
        if step.fetch is not None and step.fetch.start > step.fetch.end:  # nothing can be missing: no request
            self._take(gaps.fetched([]), gaps)
        elif step.fetch is not None:
            task = asyncio.create_task(self._backfill(step.fetch, gaps))
            self._fetches.add(task)
            task.add_done_callback(self._fetch_done)

    def _fetch_done(self, task: Any) -> None:
        """A backfill ended: an error it did not handle (a bug, a malformed page) ends the run with
        it, rather than leave the gap ledger waiting for a fetch that never answers (no more bars)."""
        self._fetches.discard(task)
        if not task.cancelled() and task.exception() is not None and not self._fetch_error.done():
            self._fetch_error.set_exception(task.exception())

    async def _backfill(self, fetch: Any, gaps: BarGaps) -> None:
        """One paged historical request for every symbol of the gap; a failure leaves a hole, told once."""
        from alpaca_cli.errors import CliError
        from alpaca_cli.output import rfc3339

        try:
            found = await self.broker.bars(fetch.symbols, fetch.start, fetch.end, feed=self.options.feed)
        except CliError as error:
            self.failed_fetches += 1
            self.out.warn(
                f"cannot fetch the bars missed from {rfc3339(fetch.start)} to {rfc3339(fetch.end)}: "
                f"{error.line()}; they are missing from the output"
            )
            found = []
        self._take(gaps.fetched(found), gaps)
        await self._flush()
        self.health.changed()

    def _emit(self, what: Any) -> None:
        """One data line (JSON, written at the next `_flush`) or one update of the table; `--count` ends the run."""
        if self.runner.done:
            return
        if isinstance(what, str):
            self._pending.append(what)
        else:
            self.board.add(what)
        self.runner.counted()

    async def _flush(self) -> None:
        """Write the lines emitted so far, in one write; wait while the reader is behind."""
        if self._pending:
            text = "".join(self._pending)
            self._pending.clear()
            if self.sink.write(text):
                await self.sink.drain()

    # -- around --------------------------------------------------------------------------

    async def _redraw(self, live: Any) -> None:
        import asyncio

        while True:
            live.update(self.board.render(self.handles, _now()), refresh=True)
            await asyncio.sleep(TABLE_REFRESH)

    async def _watch_lifecycle(self, handle: MarketDataStream) -> None:
        """Report each connection change; a permanent failure ends the command with its error."""
        from alpaca_cli.output import dumps, records

        while True:
            event = await handle.lifecycle.get()
            self.health.changed()
            if event.event == "failed" and event.error is not None:
                raise event.error
            text = _describe(event, handle)
            if text:
                self.out.message(text, style="yellow" if event.event != "connected" else "dim")
            if self.options.events and self.out.json and self.sink.write(dumps(records.stream(event)) + "\n"):
                await self.sink.drain()

    def _health_record(self) -> dict[str, Any]:
        """One health file for the command: the first connection's record, the others' figures folded in
        (counts summed, drops per kind over every connection)."""
        records = [handle.health_record() for handle in self.handles]
        record = records[0]
        record["connected"] = all(r["connected"] for r in records)
        record["feeds"] = [r["feed"] for r in records]
        record["symbols"] = [symbol for r in records for symbol in r["symbols"]]
        for count in ("items_received", "reconnects", "stale_reconnects", "queue_depth"):
            record[count] = sum(r[count] for r in records)
        for name in {key for r in records for key in r if key.startswith("dropped_")}:
            record[name] = sum(r.get(name, 0) for r in records)  # per kind, over both connections
        record["kinds"] = sorted({kind for r in records for kind in r["kinds"]})
        heard = [r["last_message_at"] for r in records if r.get("last_message_at") is not None]
        if len(heard) == len(records):  # the staler connection speaks for the command
            record["last_message_at"] = min(heard)
        elif len(records) > 1:
            record.pop("last_message_at", None)
        if self.gaps:
            record["backfilled_bars"] = sum(g.backfilled for g in self.gaps.values())
            record["backfills"] = sum(g.fetches for g in self.gaps.values())
            record["backfill_failures"] = self.failed_fetches
        return record


def _now() -> datetime:
    from datetime import UTC, datetime

    return datetime.now(UTC)
