"""`alpaca-cli stream bars`: live minute bars, as a table on a terminal or JSON Lines when piped.

The bars come through the bridge's `BarStream` (bounded queue, lifecycle
events); this module only renders them, reports connection changes on stderr
(and with `--events` as `{"type":"stream",...}` lines), keeps the market-data
health file fresh, and stops cleanly on `--count`, `--duration`, SIGINT,
SIGTERM, or when the reader of a pipe goes away.

Piped output goes through `Output.line_sink()`, which waits for a slow reader
without blocking the event loop, so bars pile up in the bridge's bounded
queue (and are dropped and counted there) instead of behind a blocked loop.
"""

from __future__ import annotations

import math
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer

from alpaca_cli.errors import UsageError
from alpaca_cli.invocation import (
    DebugOption,
    OutputOption,
    ProfileOption,
    QuietOption,
    SandboxOption,
    StopSignal,
    start,
)

if TYPE_CHECKING:
    from datetime import datetime

    from alpaca_cli.bridge import BarStream, StreamEvent
    from alpaca_cli.domain import Bar
    from alpaca_cli.invocation import Invocation

app = typer.Typer(name="stream", help="Live market data from the market-data stream.", no_args_is_help=True)

STALE_AFTER = 150.0  # 2.5 one-minute bars
TABLE_REFRESH = 0.25  # seconds between redraws of the live table
WRITE_BATCH = 500  # queued bars joined into one write to the pipe


class Feed(StrEnum):
    iex = "iex"
    sip = "sip"


@app.command("bars")
def bars(
    symbols: Annotated[list[str], typer.Argument(help="Symbols to stream, e.g. AAPL MSFT.", show_default=False)],
    feed: Annotated[Feed, typer.Option(help="iex (free plan) or sip (all exchanges, paid plan).")] = Feed.iex,
    count: Annotated[int | None, typer.Option(min=1, help="Stop after N bars (exit 0).", show_default=False)] = None,
    duration: Annotated[
        float | None, typer.Option(min=0.0, help="Stop after S seconds (exit 0).", show_default=False)
    ] = None,
    events: Annotated[
        bool, typer.Option("--events", help='Also write connection changes as {"type":"stream",...} lines.')
    ] = False,
    stale_after: Annotated[
        float,
        typer.Option(min=0.0, help="While the market is open, reconnect after S seconds without a bar (0: never)."),
    ] = STALE_AFTER,
    output: OutputOption = None,
    debug: DebugOption = False,
    profile: ProfileOption = None,
    sandbox: SandboxOption = False,
    quiet: QuietOption = False,
) -> int:
    """Stream minute bars: a live table on a terminal, JSON Lines when piped."""
    import asyncio

    wanted = _symbols(symbols)
    invocation = start(output, debug, profile, sandbox, quiet=quiet)
    options = _Options(wanted, feed.value, count, duration, events, stale_after or None)
    return asyncio.run(_run(invocation, options))


class _Options:
    __slots__ = ("count", "duration", "events", "feed", "stale_after", "symbols")

    def __init__(
        self,
        symbols: list[str],
        feed: str,
        count: int | None,
        duration: float | None,
        events: bool,
        stale_after: float | None,
    ) -> None:
        self.symbols = symbols
        self.feed = feed
        self.count = count
        self.duration = duration
        self.events = events
        self.stale_after = stale_after


def _symbols(raw: list[str]) -> list[str]:
    """Upper-cased, de-duplicated symbols; anything that cannot be a ticker is a usage error."""
    from alpaca_cli.orders import check_symbol

    wanted: list[str] = []
    for text in raw:
        for part in text.replace(",", " ").split():
            symbol = check_symbol(part)
            if symbol not in wanted:
                wanted.append(symbol)
    if not wanted:
        raise UsageError("no symbols given", hint="e.g. alpaca-cli stream bars AAPL MSFT")
    return wanted


# ----------------------------------------------------------------------- JSON lines


def _number(value: float | None) -> str:
    """A float as a JSON number: integral values without `.0`, non-finite as null."""
    if value is None or not math.isfinite(value):
        return "null"
    if value.is_integer():
        return str(int(value))
    return repr(value)


class BarLines:
    """Formats bars as the contract's JSON lines, fast (this is the hot path of a pipe)."""

    def __init__(self) -> None:
        from alpaca_cli.output import rfc3339

        self._rfc3339 = rfc3339
        self._symbols: dict[str, str] = {}
        self._last_time: datetime | None = None
        self._last_text = ""

    def __call__(self, bar: Bar) -> str:
        symbol = self._symbols.get(bar.symbol)
        if symbol is None:
            from alpaca_cli.output import dumps

            symbol = self._symbols[bar.symbol] = dumps(bar.symbol)
        if bar.timestamp != self._last_time:  # the bars of one minute share their time
            self._last_time = bar.timestamp
            self._last_text = self._rfc3339(bar.timestamp)
        return (
            f'{{"type":"bar","symbol":{symbol},"t":"{self._last_text}","o":{_number(bar.open)},'
            f'"h":{_number(bar.high)},"l":{_number(bar.low)},"c":{_number(bar.close)},'
            f'"v":{_number(bar.volume)},"n":{_number(bar.trade_count)},"vw":{_number(bar.vwap)}}}\n'
        )


# ---------------------------------------------------------------------- the table


class _Board:
    """What the live table shows: the last bar and the previous close of each symbol."""

    def __init__(self, symbols: list[str]) -> None:
        self.symbols = symbols
        self.last: dict[str, Bar] = {}
        self.previous_close: dict[str, float] = {}

    def add(self, bar: Bar) -> None:
        before = self.last.get(bar.symbol)
        if before is not None:
            self.previous_close[bar.symbol] = before.close
        elif bar.symbol not in self.symbols:
            self.symbols.append(bar.symbol)
        self.last[bar.symbol] = bar

    def render(self, handle: BarStream, now: datetime, *, stopped: bool = False) -> Any:
        from rich import box
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        # No vertical rules and no edge padding: nine columns fit 80 columns without wrapping a cell.
        table = Table(
            title=f"bars · {handle.feed} · times in UTC",
            expand=False,
            box=box.SIMPLE_HEAD,
            pad_edge=False,
            collapse_padding=True,
        )
        for column in ("symbol", "time", "open", "high", "low", "close", "volume", "change", "age"):
            table.add_column(column, justify="left" if column in ("symbol", "time") else "right", no_wrap=True)
        for symbol in self.symbols:
            bar = self.last.get(symbol)
            if bar is None:
                table.add_row(symbol, "waiting…", *[""] * 7)
                continue
            change = Text("")
            before = self.previous_close.get(symbol)
            if before:
                delta = bar.close - before
                change = Text(f"{delta:+.2f} {delta / before:+.2%}", style="green" if delta >= 0 else "red")
            age = (now - bar.timestamp).total_seconds()
            table.add_row(
                symbol,
                bar.timestamp.strftime("%H:%M:%S"),
                f"{bar.open:.2f}",
                f"{bar.high:.2f}",
                f"{bar.low:.2f}",
                f"{bar.close:.2f}",
                f"{bar.volume:,.0f}",
                change,
                f"{age:.0f}s",
            )
        h = handle.health
        if stopped:
            state = Text("stopped", style="dim")
        else:
            state = Text("connected", style="green") if h.connected else Text("disconnected", style="red")
        moment = h.connected_since if h.connected else h.last_disconnect_at
        since = f" since {moment:%H:%M:%S}" if moment and not stopped else ""
        footer = Text.assemble(
            state,
            f"{since} · reconnects {h.reconnects} · bars {h.received} · dropped {h.dropped}"
            f" · queue {handle.bars.qsize()}/{handle.bars.maxsize}",
            style="dim",
            no_wrap=True,
            overflow="ellipsis",
        )
        return Group(table, footer)


# ---------------------------------------------------------------------------- run


def _describe(event: StreamEvent, handle: BarStream) -> str | None:
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

    stop = StopSignal()
    stop.install()
    try:
        async with Broker(invocation.connection) as broker:
            connecting = asyncio.create_task(broker.bars_connect(options.symbols, feed=options.feed))
            stopping = asyncio.create_task(stop.event.wait())
            await asyncio.wait({connecting, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not connecting.done():
                connecting.cancel()
                return stop.exit_code
            stopping.cancel()
            handle = connecting.result()
            if options.stale_after:
                handle.set_stale_after(options.stale_after if await _market_open(broker, invocation) else None)
            return await _Session(invocation, options, handle, stop).run()
    finally:
        stop.uninstall()


async def _market_open(broker: Any, invocation: Invocation) -> bool:
    """Checked once: a closed market sends no bars, so silence then is no sign of a dead socket."""
    from alpaca_cli.errors import CliError

    try:
        return bool((await broker.clock()).is_open)
    except CliError as error:
        invocation.out.warn(f"cannot read the market clock ({error.line()}); assuming the market is open")
        return True


class _Session:
    """One running `stream bars`: the consumer, the lifecycle watcher and the health writer."""

    def __init__(self, invocation: Invocation, options: _Options, handle: BarStream, stop: StopSignal) -> None:
        from alpaca_cli.health import Publisher

        self.out = invocation.out
        self.environment = invocation.connection.environment
        self.options = options
        self.handle = handle
        self.stop = stop
        self.sink = self.out.line_sink()
        self.board = _Board(list(options.symbols))
        self.written = 0
        self.health = Publisher(self.environment, "market-data", self.out.warn)

    async def run(self) -> int:
        import asyncio

        json_mode = self.out.json
        if json_mode:
            await self.sink.open()
        live = None if json_mode else self._start_live()
        self._write_health()
        # The watcher starts first, so "connected" is reported before any bar already queued.
        helpers = [
            asyncio.create_task(self._watch_lifecycle()),
            asyncio.create_task(self._keep_health()),
        ]
        pump = asyncio.create_task(self._pump_json() if json_mode else self._pump_table())
        if live is not None:
            helpers.append(asyncio.create_task(self._redraw(live)))
        ends = {
            pump,
            helpers[0],
            asyncio.create_task(self.stop.event.wait()),
            asyncio.create_task(self.sink.gone.wait()),
        }
        if self.options.duration is not None:
            ends.add(asyncio.create_task(asyncio.sleep(self.options.duration)))
        try:
            done, _ = await asyncio.wait(ends, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
            return self.stop.exit_code if self.stop.event.is_set() else 0
        finally:
            for task in [*ends, *helpers]:
                task.cancel()
            await asyncio.gather(*ends, *helpers, return_exceptions=True)
            await self.handle.stop()
            if live is not None:
                self.out.stop_live(self.board.render(self.handle, _now(), stopped=True))
            await self.sink.close()
            self._write_health(stopped=True)

    async def _pump_json(self) -> None:
        line = BarLines()
        queue = self.handle.bars
        sink = self.sink
        limit = self.options.count
        written = 0
        while True:
            # The bars already queued go out in one write: a burst's 10,000 lines
            # in a few system calls, not one each. A lone bar is written at once.
            lines = [line(await queue.get())]
            room = WRITE_BATCH if limit is None else min(WRITE_BATCH, limit - written)
            while len(lines) < room and not queue.empty():
                lines.append(line(queue.get_nowait()))
            if sink.write("".join(lines)):
                await sink.drain()
            written += len(lines)
            self.written = written
            if limit is not None and written >= limit:
                return

    async def _pump_table(self) -> None:
        queue = self.handle.bars
        limit = self.options.count
        while True:
            self.board.add(await queue.get())
            self.written += 1
            if limit is not None and self.written >= limit:
                return

    def _start_live(self) -> Any:
        return self.out.start_live(self.board.render(self.handle, _now()), auto_refresh=False)

    async def _redraw(self, live: Any) -> None:
        import asyncio

        while True:
            live.update(self.board.render(self.handle, _now()), refresh=True)
            await asyncio.sleep(TABLE_REFRESH)

    async def _watch_lifecycle(self) -> None:
        """Report each connection change; a permanent failure ends the command with its error."""
        from alpaca_cli.output import dumps

        while True:
            event = await self.handle.lifecycle.get()
            self._write_health()
            if event.event == "failed" and event.error is not None:
                raise event.error
            text = _describe(event, self.handle)
            if text:
                self.out.message(text, style="yellow" if event.event != "connected" else "dim")
            if self.options.events and self.out.json and self.sink.write(dumps(event.record()) + "\n"):
                await self.sink.drain()

    async def _keep_health(self) -> None:
        import asyncio

        from alpaca_cli.health import REFRESH_EVERY

        while True:
            await asyncio.sleep(REFRESH_EVERY)
            self._write_health()

    def _write_health(self, *, stopped: bool = False) -> None:
        record = self.handle.health_record()
        record["stopped"] = stopped
        if stopped:
            record["connected"] = False
        self.health.write(record)


def _now() -> datetime:
    from datetime import UTC, datetime

    return datetime.now(UTC)
