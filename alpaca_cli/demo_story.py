"""The story `alpaca-cli demo` tells, step by step, against an in-process sandbox.

`Story.run` places orders through the same code as `submit` (a market
order, a limit order that fills when the price crosses it, a large order
that fills in pieces, one the broker refuses for buying power) while the
trade-update supervisor runs exactly as `tail trade-updates --state` does.
Then it holds the trade stream's updates back while an order fills and
drops the connection, so the fill is never delivered, and waits for the
supervisor to recover it from the broker (`"source":"reconcile"`). It ends
with the real `status` and `reconcile` commands and a summary.

Each step narrates (stderr on a terminal, `demo_step` lines when piped) and
waits, up to `STEP_TIMEOUT`, for the events it promises; a step that does not
happen in time is `DemoFailed` (exit 1). The command (`alpaca_cli.commands.demo`)
only sets the sandbox up and runs this.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from alpaca_cli.errors import BrokerRejected, CliError, ExitCode

if TYPE_CHECKING:
    from alpaca_cli.bridge import Broker
    from alpaca_cli.domain import Order, TradeUpdate
    from alpaca_cli.output import Output
    from alpaca_cli.sandbox.server import SandboxThread
    from alpaca_cli.supervisor import Notice, Supervisor

T = TypeVar("T")

TICK = 0.2  # seconds between sandbox market ticks: the large order fills over about a second
STEP_TIMEOUT = 20.0  # seconds any one step may wait before the demo gives up
PAUSE = 1.0  # seconds between steps on a terminal, so a person can follow
# Starting prices (the sandbox walks them from here).
PRICES = {"AAPL": "230.00", "MSFT": "420.00", "NVDA": "140.00", "TSLA": "350.00"}
LIMIT_BELOW = "415.00"  # the MSFT limit: under the market, so it rests...
CROSS_TO = "412.00"  # ...until the price is moved through it
LARGE_QTY = 500  # NVDA shares; the sandbox fills at most 100 per order per tick
TOO_LARGE_QTY = 2000  # TSLA shares: 700,000 USD against 200,000 of buying power
FILL_EVENTS = frozenset({"fill", "partial_fill"})


class DemoFailed(CliError):
    """A step of the story did not happen in time: a clean "no" (exit 1), with what was awaited."""

    exit_code = ExitCode.DRIFT

    def __init__(self, message: str) -> None:
        super().__init__(f"demo: {message}", hint="run again with --debug to see the tool's own logs")


class Story:
    """The demo's script: each step narrates, acts, and waits for the events it promises."""

    def __init__(self, out: Output, sandbox: SandboxThread, state_path: Path, started: float) -> None:
        self.out = out
        self.sandbox = sandbox
        self.state_path = state_path
        self.started = started
        self.updates: list[TradeUpdate] = []
        self.notices: list[Notice] = []
        self.placed: list[str] = []
        self.refused = 0
        self._changed = asyncio.Event()
        self._number = 0

    # ---------------------------------------------------------------- the story

    async def run(self) -> int:
        from alpaca_cli.bridge import Broker
        from alpaca_cli.config import load_settings, resolve
        from alpaca_cli.supervisor import Supervisor

        connection = resolve(load_settings(sandbox=True, sandbox_url=self.sandbox.url))
        await self._call(lambda: [self.sandbox.sandbox.broker.set_price(s, p) for s, p in PRICES.items()])
        await self.chapter(
            "sandbox",
            "A paper broker on your machine",
            f"The sandbox speaks Alpaca's REST and WebSocket protocols on {self.sandbox.url} "
            "(no account, no network). Everything below goes through the unmodified alpaca-py SDK.",
            url=self.sandbox.url,
        )
        stop = asyncio.Event()
        async with Broker(connection) as broker:
            supervisor = Supervisor(
                broker,
                on_update=self._on_update,
                on_notice=self._on_notice,
                state_path=self.state_path,
                environment=connection.environment,
                warn=self.out.warn,
            )
            await self.chapter(
                "tail",
                "Following trade updates",
                f"The same supervisor as `alpaca-cli tail trade-updates --state {self.state_path.name}`: "
                "it subscribes, reconciles with the broker, then prints every event once.",
            )
            running = asyncio.create_task(supervisor.run(stop), name="demo-tail")
            try:
                await self._until("the trade stream to connect", lambda: self._notice("connected"), running)
                await self._orders(broker, running)
                await self._gap(broker, running, supervisor)
                await self._command(
                    "status", "Status", "The account, its positions, and the health of the running stream.", []
                )
            finally:
                stop.set()
                (ended,) = await asyncio.gather(running, return_exceptions=True)
            if isinstance(ended, BaseException):
                raise ended  # tail failed after the story's last wait: its CliError says why
        in_sync = await self._command(
            "reconcile",
            "Reconcile",
            "tail has stopped; its state file is compared with a fresh broker snapshot (exit 0: in sync).",
            ["--state", str(self.state_path)],
            f"--state {self.state_path.name}",
        )
        return self._summary(supervisor, in_sync)

    async def _orders(self, broker: Broker, running: asyncio.Task[None]) -> None:
        await self.chapter(
            "market", "A market order", "buy 10 AAPL at the market: accepted, then filled on the next tick."
        )
        market = await self._submit(broker, "AAPL", 10)
        await self._until("the AAPL fill", lambda: self._event(market.id, "fill"), running)

        await self.chapter(
            "limit",
            "A limit order that waits",
            f"buy 20 MSFT limit {LIMIT_BELOW}, under the market: it rests as `new`.",
        )
        limit = await self._submit(broker, "MSFT", 20, limit_price=LIMIT_BELOW)
        await self._until("the MSFT order to be accepted", lambda: self._event(limit.id, "new"), running)
        await self.chapter(
            "cross", "The price crosses", f"MSFT drops to {CROSS_TO}, through the limit: the order fills."
        )
        await self._call(lambda: self.sandbox.sandbox.broker.set_price("MSFT", CROSS_TO))
        await self._until("the MSFT fill", lambda: self._event(limit.id, "fill"), running)

        await self.chapter(
            "large",
            "A large order fills in pieces",
            f"buy {LARGE_QTY} NVDA: the sandbox fills at most 100 shares a tick, so partial fills arrive first.",
        )
        large = await self._submit(broker, "NVDA", LARGE_QTY)
        await self._until("the NVDA order to fill completely", lambda: self._event(large.id, "fill"), running)

        await self.chapter(
            "rejected",
            "An order the broker refuses",
            f"buy {TOO_LARGE_QTY} TSLA: about 700,000 USD, more than the buying power; the broker says no (403).",
        )
        try:
            await self._submit(broker, "TSLA", TOO_LARGE_QTY)
        except BrokerRejected as refusal:
            self.refused += 1
            self.note(
                "refused",
                f"refused by the broker: {refusal.message}; `submit` exits {int(refusal.exit_code)}",
                status=refusal.status,
                code=refusal.code,
                message=refusal.message,
                exit_code=int(refusal.exit_code),
            )
        else:
            raise DemoFailed("the sandbox accepted an order beyond the buying power")

    async def _gap(self, broker: Broker, running: asyncio.Task[None], supervisor: Supervisor) -> None:
        await self.chapter(
            "gap",
            "Updates lost in a gap",
            "The sandbox now holds trade updates back (as a stalled connection would) while buy 15 AAPL fills; "
            "those events are never delivered.",
        )
        await self._call(lambda: self.sandbox.sandbox.faults.update(hold_trade_updates=True))
        lost = await self._submit(broker, "AAPL", 15)
        await self._until_filled(broker, lost)
        self.note("filled-unseen", "the broker filled it; the stream said nothing", order_id=lost.id)
        await self.chapter(
            "drop",
            "The connection drops",
            "The sandbox cuts the trade stream. The supervisor asks the broker at once (and again on "
            'reconnecting, before it trusts the stream) and emits what was missed, marked `"source":"reconcile"`.',
        )
        reconnects = supervisor.figures.reconnects
        await self._call(lambda: self.sandbox.sandbox.faults.update(hold_trade_updates=False))
        await asyncio.to_thread(self.sandbox.admin, "POST", "/admin/drop", {"stream": "trading"})
        await self._until("the recovered AAPL fill", lambda: self._event(lost.id, "fill", source="reconcile"), running)
        await self._until(
            "the stream to reconnect",
            lambda: self._notice("connected", lambda n: n.reconnects > reconnects),
            running,
        )

    def _summary(self, supervisor: Supervisor, in_sync: bool) -> int:
        fills = [u for u in self.updates if u.event in FILL_EVENTS]
        live = sum(1 for u in fills if u.source == "stream")
        recovered = sum(1 for u in fills if u.source != "stream")
        seconds = round(time.monotonic() - self.started, 1)
        verdict = "in sync" if in_sync else "DRIFT"
        orders = len(self.placed) + self.refused
        reconnects = supervisor.figures.reconnects
        if self.out.json:
            from alpaca_cli.output import records

            self.out.emit(
                records.demo_summary(
                    orders=orders,
                    placed=len(self.placed),
                    refused=self.refused,
                    events=len(self.updates),
                    fills_live=live,
                    fills_recovered=recovered,
                    reconnects=reconnects,
                    in_sync=in_sync,
                    seconds=seconds,
                )
            )
        else:
            self._header("Summary")
            self.out.err.print(
                f"{orders} orders ({self.refused} refused), {len(self.updates)} trade updates: "
                f"{live} fills live, {recovered} recovered by reconciliation; "
                f"{reconnects} reconnect(s); verdict [bold {'green' if in_sync else 'red'}]{verdict}[/] "
                f"in {seconds:g} s.",
                highlight=False,
            )
            self.out.err.print(
                "Next: `alpaca-cli sandbox serve` in one terminal, `alpaca-cli tail trade-updates --sandbox` "
                "in another, `alpaca-cli submit AAPL buy --qty 1 --sandbox` in a third.",
                style="dim",
                highlight=False,
            )
        return 0 if in_sync else 1

    # ------------------------------------------------------------------- acting

    async def _submit(self, broker: Broker, symbol: str, qty: int, *, limit_price: str | None = None) -> Order:
        """Place one buy order through `submit`'s own validation and idempotent placing."""
        from alpaca_cli import orders

        request = orders.validate_order(
            symbol,
            "buy",
            qty=str(qty),
            order_type="limit" if limit_price else "market",
            limit_price=limit_price,
        )
        flags = f" --type limit --limit-price {limit_price}" if limit_price else ""
        self.note(
            "submit",
            f"$ alpaca-cli submit {symbol} buy --qty {qty}{flags} --sandbox",
            client_order_id=request.client_order_id,
        )
        placement = await orders.place(broker, request)
        self.placed.append(placement.order.id)
        return placement.order

    async def _until_filled(self, broker: Broker, order: Order) -> None:
        """Poll the broker (REST) until the order is filled: the stream is silent on purpose here."""
        deadline = time.monotonic() + STEP_TIMEOUT
        while time.monotonic() < deadline:
            if (await broker.order(order.id)).status == "filled":
                return
            await asyncio.sleep(TICK / 2)
        raise DemoFailed(f"order {order.id} did not fill within {STEP_TIMEOUT:g} s")

    async def _call(self, fn: Callable[[], Any]) -> Any:
        """Run `fn` on the sandbox's own loop (the broker is not thread-safe), without blocking ours."""
        return await asyncio.to_thread(self.sandbox.call, fn)

    async def _command(self, name: str, title: str, text: str, args: list[str], shown: str = "") -> bool:
        """Run a real `alpaca-cli` command against the sandbox, its output shown as is; True on exit 0."""
        import subprocess

        await self.chapter(name, title, text, command=f"alpaca-cli {name} {shown}".rstrip() + " --sandbox")
        mode = "json" if self.out.json else "table"
        argv = [sys.executable, "-m", "alpaca_cli", name, *args, "--sandbox", "-o", mode]
        env = {**os.environ, "ALPACA_CLI_SANDBOX_URL": self.sandbox.url}
        sys.stdout.flush()
        if self.out.json:
            result = await asyncio.to_thread(
                subprocess.run, argv, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60
            )
            for line in result.stdout.splitlines():
                if line.strip():
                    self.out.stdout.write(line + "\n")
            self.out.stdout.flush()
            sys.stderr.write(result.stderr)
        else:
            result = await asyncio.to_thread(subprocess.run, argv, env=env, stdin=subprocess.DEVNULL, timeout=60)
        return result.returncode == 0

    # ---------------------------------------------------------------- listening

    def _on_update(self, update: TradeUpdate) -> None:
        from alpaca_cli.output import records

        self.updates.append(update)
        if self.out.json:
            self.out.write_lines([records.trade_update(update) + "\n"])
        else:
            from alpaca_cli.output import trade_update_text  # the very line `tail` prints

            console = self.out.console
            console.print(trade_update_text(update, console.width), no_wrap=True, crop=True)
        self._changed.set()

    def _on_notice(self, notice: Notice) -> None:
        self.notices.append(notice)
        if self.out.json:
            from alpaca_cli.output import records

            self.out.emit(records.stream(notice))
        else:
            style = "green" if notice.event == "connected" else "yellow"
            self.out.message(notice.text(), style=style)
        self._changed.set()

    def _event(self, order_id: str, event: str, *, source: str | None = None) -> TradeUpdate | None:
        for update in self.updates:
            if update.order.id == order_id and update.event == event and source in (None, update.source):
                return update
        return None

    def _notice(self, event: str, also: Callable[[Notice], bool] = lambda _: True) -> Notice | None:
        return next((n for n in self.notices if n.event == event and also(n)), None)

    async def _until(self, what: str, found: Callable[[], T | None], running: asyncio.Task[None]) -> T:
        """Wait until `found()` gives something; fail if tail stopped or the step takes too long."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STEP_TIMEOUT
        while (result := found()) is None:
            if running.done():
                running.result()  # tail failed: its CliError says why
                raise DemoFailed(f"tail stopped while waiting for {what}")
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise DemoFailed(f"waited {STEP_TIMEOUT:g} s for {what}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(remaining, 0.5)):
                    await self._changed.wait()
        return result

    # --------------------------------------------------------------- narrating

    async def chapter(self, name: str, title: str, text: str, **extra: Any) -> None:
        """`step`, after a short pause on a terminal so a person can read the last one."""
        if not self.out.json and self._number:
            await asyncio.sleep(PAUSE)
        self.step(name, title, text, **extra)

    def step(self, name: str, title: str, text: str, **extra: Any) -> None:
        """A chapter of the story: a header on stderr, or a `demo_step` line."""
        self._number += 1
        if self.out.json:
            from alpaca_cli.output import records

            self.out.emit(records.demo_step(name, self._number, text, title=title, **extra))
            return
        self._header(f"{self._number}. {title}")
        self.out.message(text, style="dim")
        if "command" in extra:
            self.out.message(f"$ {extra['command']}", style="bold")

    def note(self, name: str, text: str, **extra: Any) -> None:
        """A line within a step (a command typed, a refusal)."""
        if self.out.json:
            from alpaca_cli.output import records

            self.out.emit(records.demo_step(name, self._number, text, **extra))
        else:
            self.out.message(text, style="bold" if text.startswith("$") else "magenta")

    def _header(self, title: str) -> None:
        self.out.err.rule(f"[bold]{title}[/]", align="left", style="blue")
