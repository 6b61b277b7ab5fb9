"""`alpaca-cli tail trade-updates`: every fill the moment it happens, and none twice.

The supervisor (`alpaca_cli.supervisor`) does the work: the stream for
latency, the broker for truth, polling while the stream is down. This module
renders its events (one colored line each under a status line on a terminal,
the contract's JSON Lines when piped), tells lifecycle changes on stderr (and
with `--events stream` as `{"type":"stream",...}` lines), and stops on
`--count`, `--duration`, SIGINT/SIGTERM or when the pipe's reader leaves.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from alpaca_cli.errors import UsageError
from alpaca_cli.invocation import (
    DebugOption,
    OutputOption,
    ProfileOption,
    QuietOption,
    SandboxOption,
    complete_list,
    start,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from alpaca_cli.domain import TradeUpdate
    from alpaca_cli.invocation import Invocation
    from alpaca_cli.runner import Limits, Runner
    from alpaca_cli.supervisor import Notice, Supervisor

# What `--events` takes, offered by TAB: core.apply's KNOWN_EVENTS (which loads pydantic,
# too slow for a TAB; tests/test_tail_limits.py keeps the two equal) and `stream`.
EVENT_NAMES = (
    "fill",
    "partial_fill",
    "new",
    "accepted",
    "pending_new",
    "canceled",
    "pending_cancel",
    "expired",
    "rejected",
    "replaced",
    "pending_replace",
    "done_for_day",
    "stopped",
    "suspended",
    "calculated",
    "restated",
    "order_cancel_rejected",
    "order_replace_rejected",
    "stream",
)


_complete_events = complete_list(EVENT_NAMES)


app = typer.Typer(name="tail", help="Follow account events as they happen.", no_args_is_help=True)

STATUS_REFRESH = 4  # status line redraws per second


@app.command("trade-updates")
def trade_updates(
    state: Annotated[
        Path | None,
        typer.Option(
            "--state",
            help="Apply every event to this state file (created from the broker if missing).",
            show_default=False,
            dir_okay=False,
        ),
    ] = None,
    symbols: Annotated[
        str | None, typer.Option("--symbols", help="Only these symbols, e.g. AAPL,MSFT.", show_default=False)
    ] = None,
    events: Annotated[
        str | None,
        typer.Option(
            "--events",
            help="Only these events, e.g. fill,partial_fill,canceled,rejected; add `stream` for connection lines.",
            show_default=False,
            autocompletion=_complete_events,
        ),
    ] = None,
    count: Annotated[
        int | None, typer.Option(min=1, help="Stop after N trade-update lines (exit 0).", show_default=False)
    ] = None,
    duration: Annotated[
        float | None, typer.Option(min=0.0, help="Stop after S seconds (exit 0).", show_default=False)
    ] = None,
    poll_interval: Annotated[
        float, typer.Option("--poll-interval", min=0.1, help="Seconds between broker polls while the stream is down.")
    ] = 10.0,
    slow_poll: Annotated[
        float, typer.Option("--slow-poll", min=0.5, help="Seconds between checks for a connected but mute stream.")
    ] = 60.0,
    output: OutputOption = None,
    debug: DebugOption = False,
    profile: ProfileOption = None,
    sandbox: SandboxOption = False,
    quiet: QuietOption = False,
) -> int:
    """Stream order events (fills, partial fills, cancels, rejects) exactly once, reconciled with the broker."""
    import asyncio

    from alpaca_cli.runner import Limits

    limits = Limits(count=count, duration=duration)  # --duration counts from here: connecting and catch-up included
    options = _Options(
        state=state,
        symbols=_symbols(symbols),
        events=_events(events),
        limits=limits,
        poll_interval=poll_interval,
        slow_poll=slow_poll,
    )
    invocation = start(output, debug, profile, sandbox, quiet=quiet)
    return asyncio.run(_run(invocation, options))


@dataclass(frozen=True, slots=True)
class _Options:
    state: Path | None
    symbols: frozenset[str] | None
    events: frozenset[str] | None
    limits: Limits
    poll_interval: float
    slow_poll: float

    @property
    def stream_lines(self) -> bool:
        return self.events is not None and "stream" in self.events


def _symbols(text: str | None) -> frozenset[str] | None:
    if text is None:
        return None
    from alpaca_cli.orders import check_symbol

    wanted = frozenset(check_symbol(part) for part in text.replace(" ", ",").split(",") if part.strip())
    if not wanted:
        raise UsageError("--symbols is empty", hint="e.g. --symbols AAPL,MSFT")
    return wanted


def _events(text: str | None) -> frozenset[str] | None:
    if text is None:
        return None
    from alpaca_cli.core.apply import KNOWN_EVENTS

    wanted = frozenset(part.strip().lower() for part in text.split(",") if part.strip())
    unknown = sorted(wanted - KNOWN_EVENTS - {"stream"})
    if unknown or not wanted:
        raise UsageError(
            f"unknown event(s) for --events: {', '.join(unknown) or '(none given)'}",
            hint=f"choose from {', '.join(sorted(KNOWN_EVENTS))}, stream",
        )
    return wanted


# ----------------------------------------------------------------------------- rendering


class _View:
    """Where events and notices go: JSON Lines on a pipe, colored lines and a status line on a terminal."""

    def __init__(self, invocation: Invocation, options: _Options, run: Runner) -> None:
        self.out = invocation.out
        self.options = options
        self.run = run
        self.sink = self.out.line_sink()
        self.supervisor: Supervisor | None = None
        self._live: Any = None
        self._json_line: Callable[[TradeUpdate], str] | None = None  # records.trade_update, with -o json

    async def open(self) -> None:
        if self.out.json:
            from alpaca_cli.output import records

            self._json_line = records.trade_update  # looked up once, not per fill
            await self.sink.open()
        else:
            self._live = self.out.start_live(
                get_renderable=self._status, refresh_per_second=STATUS_REFRESH, transient=True
            )

    async def close(self) -> None:
        if self._live is not None:
            self.out.stop_live()
        await self.sink.close()

    def _wanted(self, update: TradeUpdate) -> bool:
        o = self.options
        return (o.events is None or update.event in o.events) and (
            o.symbols is None or update.order.symbol in o.symbols
        )

    def update(self, update: TradeUpdate) -> bool:
        """Print one update; False once `--count` lines were printed (it takes no more).

        The supervisor hands a catch-up burst over in one go; past N nothing
        is printed. With `--state` the lines it did not take stay in the state
        file's outbox, and the next run prints them first: none is lost.
        """
        if not self._wanted(update):
            return True
        if self.run.done:
            return False
        if self._json_line is not None:
            self.sink.write(self._json_line(update) + "\n")
        else:
            from alpaca_cli.output import trade_update_text

            console = self.out.console
            console.print(trade_update_text(update, console.width), no_wrap=True, crop=True)
        self.run.counted()
        return True

    def notice(self, notice: Notice) -> None:
        if notice.event != "failed":  # a failure is the command's error line, printed once by main
            style = "dim" if notice.event in ("connected", "polling") else "yellow"
            self.out.message(notice.text(), style=style)
        if self.options.stream_lines and self.out.json:
            from alpaca_cli.output import dumps, records

            self.sink.write(dumps(records.stream(notice)) + "\n")

    def _status(self) -> Any:
        from rich.text import Text

        sup = self.supervisor
        if sup is None:
            return Text("connecting…", style="dim")
        figures = sup.figures
        health = sup.health_record()
        state = Text("● live", style="green") if figures.connected else Text(f"● {figures.mode}", style="red")
        age = health["reconcile_age_s"]
        sources = health["sources"]
        mute = f" ({figures.mute_reconnects} mute)" if figures.mute_reconnects else ""
        return Text.assemble(
            state,
            (
                f" · reconnects {figures.reconnects}{mute}"
                f" · reconciled {'never' if age is None else f'{age:.0f} s ago'}"
                f" · events {figures.emitted} · recovered {sources.get('reconcile', 0)}",
                "dim",
            ),
            no_wrap=True,
            overflow="ellipsis",
        )


# -------------------------------------------------------------------------------- running


async def _run(invocation: Invocation, options: _Options) -> int:
    from alpaca_cli.bridge import Broker
    from alpaca_cli.runner import Runner
    from alpaca_cli.supervisor import Supervisor

    async with Runner(options.limits) as run:
        view = _View(invocation, options, run)
        try:
            await view.open()
            run.watch(view.sink.gone)
            async with Broker(invocation.connection) as broker:
                supervisor = Supervisor(
                    broker,
                    on_update=view.update,
                    on_notice=view.notice,
                    state_path=options.state,
                    environment=invocation.connection.environment,
                    warn=invocation.out.warn,
                    poll_interval=options.poll_interval,
                    slow_poll=options.slow_poll,
                    printed=view.sink.flushed,
                )
                view.supervisor = supervisor
                await supervisor.run(run.end)
        finally:
            await view.close()
    return run.exit_code
