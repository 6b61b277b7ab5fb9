"""The one output module every command renders through.

The contract in one place: data on stdout, everything else (logs, spinners,
banners, warnings, errors) on stderr; Rich on a terminal, JSON Lines when
piped; one JSON object per line, flushed per line, each with a `"type"`.
Decimals are written as JSON numbers from their decimal digits (no float
noise), datetimes as RFC 3339 UTC with `Z` (`alpaca_cli.text`). What each line
holds is `records` (one function per `"type"`); this module writes lines and
renders tables and live views.

Commands that stream (`stream bars`, `tail`) write through `Output.line_sink()`,
which puts a pipe of stdout's own under asyncio flow control: a slow reader
then makes the writer wait while the event loop keeps running, so data piles
up in the bridge's bounded queues (dropped and counted there) instead of
unbounded behind a blocked loop.

Rich and asyncio are imported on first use, not at import: `--help` and TAB
completion load this module and must stay fast.
"""

from __future__ import annotations

import dataclasses
import math
import os
import stat
import sys
import time
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import IO, TYPE_CHECKING, Any, Literal

from alpaca_cli.text import decimal_text, json_number, json_string, rfc3339

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.live import Live
    from rich.table import Table
    from rich.text import Text

    from alpaca_cli.domain import Order, Position, TradeUpdate

Mode = Literal["auto", "table", "json"]


def dumps(value: Any) -> str:
    """Serialise to compact JSON, writing Decimal as an exact number."""
    parts: list[str] = []
    _write(value, parts.append)
    return "".join(parts)


def _write(value: Any, out: Any) -> None:
    if value is None:
        out("null")
    elif value is True:
        out("true")
    elif value is False:
        out("false")
    elif isinstance(value, str):
        out(json_string(value))
    elif isinstance(value, Decimal):
        out(decimal_text(value))
    elif isinstance(value, int):
        out(str(int(value)))
    elif isinstance(value, float):
        out(repr(value) if math.isfinite(value) else "null")
    elif isinstance(value, datetime):
        out(json_string(rfc3339(value)))
    elif isinstance(value, date):
        out(json_string(value.isoformat()))
    elif isinstance(value, Mapping):
        out("{")
        first = True
        for key, item in value.items():
            if not first:
                out(",")
            first = False
            out(json_string(str(key)))
            out(":")
            _write(item, out)
        out("}")
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        _write({f.name: getattr(value, f.name) for f in dataclasses.fields(value)}, out)
    elif isinstance(value, Iterable):
        out("[")
        first = True
        for item in value:
            if not first:
                out(",")
            first = False
            _write(item, out)
        out("]")
    else:
        out(json_string(str(value)))


class ReaderGone(Exception):
    """The reader of stdout went away (`| head -1`): it wants no more, so stop quietly.

    Not an `OSError` on purpose: Click turns those into exit 1, and the entry
    point answers this one with exit 0 and no message.
    """


class Output:
    """Where a command's data and messages go, decided once per run."""

    def __init__(
        self, mode: Mode = "auto", *, debug: bool = False, quiet: bool = False, stdout: IO[str] | None = None
    ) -> None:
        self.stdout = stdout or sys.stdout
        self.debug = debug
        self.quiet = quiet
        self._live: Live | None = None
        if mode == "auto":
            mode = "table" if self.stdout.isatty() else "json"
        self.mode: Mode = mode
        self._console: Console | None = None
        self._err: Console | None = None

    @property
    def json(self) -> bool:
        return self.mode == "json"

    @property
    def interactive(self) -> bool:
        """True when a person is watching stderr and wants to see progress (spinners make sense)."""
        return sys.stderr.isatty() and not self.quiet

    @property
    def console(self) -> Console:
        """Rich console on stdout, for tables and panels (table mode only)."""
        if self._console is None:
            from rich.console import Console

            self._console = Console(file=self.stdout, highlight=False)
        return self._console

    @property
    def err(self) -> Console:
        """Rich console on stderr, for everything that is not data.

        Off a terminal (a log file, journald, a pipe to grep) one message stays
        one line: Rich would otherwise wrap it at 80 columns into fragments.
        """
        if self._err is None:
            from rich.console import Console

            self._err = Console(stderr=True, highlight=False, soft_wrap=not sys.stderr.isatty())
        return self._err

    def line_sink(self) -> LineSink:
        """A writer of whole lines to stdout for streaming commands: open it once per run, close it at the end."""
        return LineSink(self.stdout)

    def emit(self, record: Mapping[str, Any]) -> None:
        """Write one JSON object as one line and flush, so `| jq` sees it at once."""
        try:
            self.stdout.write(dumps(record) + "\n")
            self.stdout.flush()
        except BrokenPipeError:
            raise ReaderGone from None

    def write_lines(self, lines: Iterable[str]) -> None:
        """Write ready-made JSON lines (each ending in a newline) and flush once: a page of an export."""
        try:
            self.stdout.writelines(lines)
            self.stdout.flush()
        except BrokenPipeError:
            raise ReaderGone from None

    def csv(self, columns: Iterable[str], rows: Iterable[Iterable[Any]]) -> None:
        """A header and rows as CSV on stdout (`-o csv`, for spreadsheets): exact decimals, RFC 3339 times."""
        self.csv_rows([columns])
        self.csv_rows(rows)

    def csv_rows(self, rows: Iterable[Iterable[Any]]) -> None:
        """More CSV rows (a paged export writes its header, then each page as it arrives)."""
        import csv

        def cell(value: Any) -> Any:
            if value is None:
                return ""
            if isinstance(value, Decimal):
                return decimal_text(value)
            if isinstance(value, datetime):
                return rfc3339(value)
            if isinstance(value, float):
                return json_number(value)  # as in JSON: 1668, not 1668.0
            return value

        try:
            writer = csv.writer(self.stdout, lineterminator="\n")
            for row in rows:
                writer.writerow([cell(value) for value in row])
            self.stdout.flush()
        except BrokenPipeError:
            raise ReaderGone from None

    def start_live(self, renderable: RenderableType = "", **options: Any) -> Live:
        """A live view on stdout's console; until `stop_live`, messages print above it.

        Rich's own way (`live.console.print`): a message written to the
        terminal behind Live's back is glued onto its region and leaves a
        stale copy of it behind. `options` are `rich.live.Live`'s.
        """
        from rich.live import Live

        shared = self._shared_screen()
        live = Live(renderable, console=self.console, redirect_stdout=shared, redirect_stderr=shared, **options)
        live.start()
        self._live = live
        return live

    def stop_live(self, last: RenderableType | None = None) -> None:
        """End the live view (drawing `last` as its final state when given)."""
        live, self._live = self._live, None
        if live is None:
            return
        if last is not None:
            live.update(last, refresh=True)
        live.stop()

    def _shared_screen(self) -> bool:
        """stdout and stderr are the same terminal: a message must not be drawn over the live view."""
        try:
            return self.stdout.isatty() and sys.stderr.isatty()
        except (AttributeError, ValueError):
            return False

    def message(self, text: str, *, style: str | None = None, essential: bool = False) -> None:
        """A human message on stderr (plain text; markup is not interpreted).

        `--quiet` silences it unless it is `essential`: the reason for a
        failing exit code is never silenced.
        """
        if essential or not self.quiet:
            self._say(text, style)

    def warn(self, text: str) -> None:
        """A warning: something is wrong but the command goes on. `--quiet` keeps these."""
        self._say(f"warning: {text}", "yellow")

    def _say(self, text: str, style: str | None) -> None:
        live = self._live
        if live is not None and live.is_started and self._shared_screen():
            from rich.text import Text

            live.console.print(Text(text, style=style or ""), highlight=False)
        else:
            self.err.print(text, style=style, markup=False, highlight=False)

    def banner(self, environment: str, key_id: str | None = None) -> None:
        """The one-line environment banner on stderr; `--quiet` drops it, except for a live account.

        It names the key id it uses (what the tool knows before any call), not an account number.
        """
        if self.quiet and environment != "live":
            return
        suffix = f" · key id {key_id}" if key_id else ""
        style = "bold white on red" if environment == "live" else "dim"
        self._say(f"[{environment.upper()}]{suffix}", style)


_EVENT_STYLE = {
    "fill": "bold green",
    "partial_fill": "green",
    "new": "cyan",
    "accepted": "cyan",
    "canceled": "yellow",
    "expired": "yellow",
    "done_for_day": "yellow",
    "replaced": "yellow",
    "pending_cancel": "dim yellow",
    "pending_replace": "dim yellow",
    "rejected": "bold red",
    "order_cancel_rejected": "red",
    "order_replace_rejected": "red",
}


WIDE = 100  # columns from which a trade-update row has room for milliseconds and generous padding


def trade_update_text(update: TradeUpdate, width: int | None = None) -> Text:
    """A trade update as one colored table-mode line, the one `tail`, `submit --wait` and `demo` print.

    Time, symbol, side, event (this fill's qty @ price), filled/total,
    status (with the broker's reason, when it gave one), source. Under `WIDE`
    columns the time drops its milliseconds and the padding shrinks so the row
    fits 80 columns; a row that still does not fit `width` is cut with an
    ellipsis rather than wrapped.
    """
    from rich.text import Text

    order = update.order
    what = update.event
    if update.qty is not None:
        what += f" {decimal_text(update.qty)}"
        if update.price is not None:
            what += f" @ {decimal_text(update.price)}"
    if order.qty is not None:
        total = decimal_text(order.qty)
    else:
        total = f"${decimal_text(order.notional)}" if order.notional else "?"
    wide = width is None or width >= WIDE
    clock = update.timestamp.strftime("%H:%M:%S.%f")[:-3] if wide else update.timestamp.strftime("%H:%M:%S")
    status = f"{order.status}: {update.reason}" if update.reason else order.status
    fields = (order.symbol, order.side, what, f"{decimal_text(order.filled_qty)}/{total}", status)
    gap = "  " if wide else " "
    pads = [6, 4, 28, 13, 16] if wide else [5, 4, 20, 9, 16]
    if width is not None:  # long values first eat the padding of the columns after them
        length = len(clock) + len(gap) + len(fields) + len(update.source)
        excess = length + sum(max(len(f), p) for f, p in zip(fields, pads, strict=True)) - width
        for i in (2, 3, 0, 4):
            cut = min(max(excess, 0), max(pads[i] - len(fields[i]), 0))
            pads[i] -= cut
            excess -= cut
    styles = ("bold", "", _EVENT_STYLE.get(update.event, ""), "", "dim")
    parts: list[str | tuple[str, str]] = [(clock, "dim")]
    for i, (field, pad, style) in enumerate(zip(fields, pads, styles, strict=True)):
        parts += [gap if i == 0 else " ", (f"{field:<{pad}}", style)]
    parts += [" ", (update.source, "magenta" if update.source == "reconcile" else "dim")]
    line = Text.assemble(*parts, no_wrap=True, overflow="ellipsis")
    if width is not None and line.cell_len > width:
        line.truncate(width, overflow="ellipsis")
    return line


# ------------------------------------------------------------------ market-data lines
def price_text(value: float, like: float | None = None) -> str:
    """A price in a table: two decimals (no thousands separator: a coin's 94283.12 keeps a row
    within 80 columns); six significant digits below a dollar (a cheap coin, a sub-cent
    spread), where two decimals would show 0.00.

    `like`: the price whose decimals a difference takes (a spread is written as its bid is).
    """
    return f"{value:.2f}" if abs(value if like is None else like) >= 1 else f"{value:.6g}"


def quantity_text(value: float) -> str:
    """A size or volume in a table: whole shares as such, fractions (a crypto pair's 2.496
    coins) with their digits, never rounded to a whole number."""
    return f"{value:,.0f}" if value.is_integer() else f"{value:,.6g}"


class _Paced:
    """Flow control of the stdout pipe transport, and news of the reader leaving.

    An asyncio protocol by its methods rather than by `asyncio.Protocol` as
    a base, so that importing this module does not import asyncio.
    """

    def __init__(self) -> None:
        import asyncio

        self.gone = asyncio.Event()
        self._resumed: asyncio.Future[None] | None = None
        self.paused = False

    def connection_made(self, transport: Any) -> None:
        pass

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        if self._resumed is not None and not self._resumed.done():
            self._resumed.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self.paused = False
        self.gone.set()
        if self._resumed is not None and not self._resumed.done():
            self._resumed.set_result(None)

    async def wait_resumed(self) -> None:
        import asyncio

        self._resumed = asyncio.get_running_loop().create_future()
        await self._resumed


class LineSink:
    """Whole lines to stdout, each written at once (the contract's flush per line).

    On a pipe or socket of its own, stdout becomes an asyncio transport with
    flow control; elsewhere (a terminal, a file, or a pipe shared with stderr,
    whose non-blocking mode would leak into stderr) writes stay blocking.
    """

    def __init__(self, stdout: IO[str]) -> None:
        import asyncio

        self._stdout = stdout
        self._transport: asyncio.WriteTransport | None = None
        self._protocol: _Paced | None = None
        self._fd = -1
        self.gone = asyncio.Event()

    async def open(self) -> None:
        try:
            fd = self._stdout.fileno()
            mode = os.fstat(fd).st_mode
        except (OSError, ValueError, AttributeError):
            return
        if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)) or _same_file(fd, 2):
            return
        import asyncio

        self._stdout.flush()
        loop = asyncio.get_running_loop()
        # The transport owns (and closes) a duplicate, so fd 1 stays open for the exit path.
        self._fd = fd
        pipe = os.fdopen(os.dup(fd), "wb", buffering=0, closefd=True)
        transport, protocol = await loop.connect_write_pipe(_Paced, pipe)
        self._transport, self._protocol = transport, protocol
        self.gone = protocol.gone

    def write(self, line: str) -> bool:
        """Write one line; True when the reader is behind and `drain()` should be awaited."""
        if self._transport is None:
            try:
                self._stdout.write(line)
                self._stdout.flush()
            except BrokenPipeError:
                self.gone.set()
            return False
        if self.gone.is_set():
            return False
        self._transport.write(line.encode())
        return self._protocol is not None and self._protocol.paused

    async def drain(self) -> None:
        if self._protocol is not None and self._protocol.paused:
            await self._protocol.wait_resumed()

    async def flushed(self) -> None:
        """Return once every line written so far has left the process (or the reader is gone)."""
        transport = self._transport
        if transport is None:
            return
        import asyncio

        while transport.get_write_buffer_size() and not self.gone.is_set():
            await asyncio.sleep(0.005)

    async def close(self) -> None:
        """Write out what is buffered (up to a second; the reader may be stuck), then close."""
        transport = self._transport
        if transport is None:
            return
        import asyncio

        deadline = time.monotonic() + 1.0
        while transport.get_write_buffer_size() and not self.gone.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        transport.close()
        self._transport = None
        # The transport made the pipe non-blocking; whoever writes to it after us expects it blocking.
        os.set_blocking(self._fd, True)


def _same_file(fd: int, other: int) -> bool:
    try:
        a, b = os.fstat(fd), os.fstat(other)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def error_line(message: str) -> None:
    """The contract's one clear error line, on stderr, without Rich (works even mid-crash)."""
    try:
        sys.stderr.write(f"alpaca-cli: error: {message}\n")
        sys.stderr.flush()
    except (BrokenPipeError, ValueError):
        pass


def orders_table(orders: Iterable[Order], title: str, *, dates: bool = False, first: int | None = None) -> Table:
    """The one Rich table of orders (`status --orders`, `orders`, the list `cancel --all` asks about).

    `dates` shows the day too (listings that span days); a group's legs follow their order, marked └.
    `first` keeps a terminal readable: only the newest `first` rows, and a caption counting the rest
    (drawing 10,000 rows takes longer than anything the command does).
    """
    from rich.table import Table

    orders = list(orders)
    hidden = len(orders) - first if first is not None and len(orders) > first else 0
    table = Table(title=title, caption=f"… and {hidden} older not shown (-o json lists them all)" if hidden else None)
    orders = orders[hidden:]
    for column in ("submitted", "symbol", "side", "type", "qty", "filled", "limit", "stop", "status", "id"):
        table.add_column(column)
    when = "%Y-%m-%d %H:%M:%S" if dates else "%H:%M:%S"
    for order in orders:
        for o in (order, *order.legs):
            table.add_row(
                ("└ " if o is not order else "") + o.submitted_at.strftime(when),
                o.symbol,
                o.side,
                o.type,
                str(o.qty if o.qty is not None else f"${o.notional}"),
                str(o.filled_qty),
                str(o.limit_price or ""),
                str(o.stop_price or ""),
                o.status,
                o.id,
            )
    return table


def positions_table(positions: Iterable[Position], title: str) -> Table:
    """The one Rich table of positions (`status --positions`, `positions`, what `close --all` asks about)."""
    from rich.table import Table

    def money(value: Decimal | None) -> str:
        return f"{value:,.2f}" if value is not None else "-"

    table = Table(title=title)
    for column in ("symbol", "side", "qty", "avg entry", "price", "market value", "unrealized P/L"):
        table.add_column(column, justify="left" if column in ("symbol", "side") else "right")
    for p in positions:
        table.add_row(
            p.symbol,
            p.side,
            str(p.qty),
            money(p.avg_entry_price),
            money(p.current_price),
            money(p.market_value),
            money(p.unrealized_pl),
        )
    return table
