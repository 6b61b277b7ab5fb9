"""`alpaca-cli sandbox serve`: run the local paper broker for scripts and tests.

Anything built on alpaca-py can point at it with `url_override` and the keys
printed at start; `alpaca-cli --sandbox` finds it through ALPACA_CLI_SANDBOX_URL.
aiohttp loads only when the server starts, so `--help` stays fast.
"""

from __future__ import annotations

import inspect
import signal
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from alpaca_cli.errors import ExitCode, UsageError
from alpaca_cli.sandbox.faults import Faults, switches

app = typer.Typer(
    name="sandbox",
    help="A local paper broker speaking Alpaca's protocols (no account, no network).",
    no_args_is_help=True,
)

_STOP_TIMEOUT = 4.0  # seconds; the whole shutdown must fit in 5


@app.command("serve")
def serve(
    host: Annotated[str, typer.Option(help="Address to bind; loopback unless you mean otherwise.")] = ("127.0.0.1"),
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to bind (0: any free port).")] = 8765,
    seed: Annotated[int, typer.Option(help="Seed of the simulated market (same seed, same prices).")] = 0,
    key_id: Annotated[str, typer.Option("--key-id", help="API key id the sandbox accepts.")] = "SANDBOXKEY",
    secret_key: Annotated[
        str, typer.Option("--secret-key", help="API secret the sandbox accepts (a throwaway, not yours).")
    ] = "SANDBOXSECRET",
    tick_interval: Annotated[
        float, typer.Option(min=0.001, help="Seconds between market ticks (price moves and fills).")
    ] = 0.05,
    bar_interval: Annotated[float, typer.Option(min=0.01, help="Seconds per streamed bar.")] = 60.0,
    rate_limit: Annotated[
        int, typer.Option(min=0, help="REST requests per minute per key, as Alpaca allows (0: no limit).")
    ] = 200,
    always_open: Annotated[
        bool, typer.Option("--always-open", help="Trade around the clock instead of NYSE hours (demos, tests).")
    ] = False,
    market_closed: Annotated[
        bool, typer.Option("--market-closed", help="Report the market closed whatever the calendar: nothing moves.")
    ] = False,
    now: Annotated[
        str | None, typer.Option(help="Start the sandbox's clock at this RFC 3339 time (e.g. 2026-12-24T15:00:00Z).")
    ] = None,
    no_sip: Annotated[
        bool, typer.Option("--no-sip", help="Refuse the sip feed (409 insufficient subscription), as a free plan.")
    ] = False,
    **fault_flags: Any,
) -> int:
    """Serve Alpaca's trading REST, historical bars and both streams on one local port.

    As strict as the real broker unless told otherwise: NYSE hours and holidays,
    200 requests a minute per key. Stops cleanly on SIGINT or SIGTERM. Faults can
    also be changed while it runs, with the same names and meanings as these flags:
    `curl -X POST URL/admin/faults -d '{"rest_status":503,"rest_count":3}'`.
    """
    if always_open and market_closed:
        raise UsageError("--always-open and --market-closed contradict each other", hint="pick one")
    faults = Faults()
    # Every fault flag is the /admin/faults switch of the same name, passed through as is.
    faults.update(**fault_flags)
    options = {
        "host": host,
        "port": port,
        "seed": seed,
        "key_id": key_id,
        "secret_key": secret_key,
        "tick_interval": tick_interval,
        "bar_interval": bar_interval,
        "faults": faults,
        "sip_allowed": not no_sip,
        "always_open": always_open,
        "market_closed": market_closed,
        "now": _parse_now(now),
        "rate_limit": rate_limit,
    }
    import asyncio

    return asyncio.run(_serve(options))


def _add_fault_flags(command: Callable[..., int]) -> None:
    """One `serve` option per `Faults` field (`--rest-status` for `rest_status`), passed in `**fault_flags`."""
    signature = inspect.signature(command, eval_str=True)
    fixed = [p for p in signature.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    added = []
    for switch in switches():
        kind: Any = switch.kind | None if switch.optional else switch.kind
        if switch.kind is bool:
            option = typer.Option(switch.flag, help=_sentence(switch.help))
        else:
            option = typer.Option(
                switch.flag,
                help=_sentence(switch.help),
                metavar=switch.metavar,
                min=switch.low,
                max=switch.high,
            )
        annotation = Annotated[kind, option]
        added.append(
            inspect.Parameter(
                switch.name, inspect.Parameter.KEYWORD_ONLY, default=switch.default, annotation=annotation
            )
        )
        command.__annotations__[switch.name] = annotation
    command.__signature__ = signature.replace(parameters=[*fixed, *added])  # type: ignore[attr-defined]


def _sentence(text: str) -> str:
    return text[0].upper() + text[1:] + "."


_add_fault_flags(serve)


def _parse_now(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"--now: not an RFC 3339 time: {text!r}", hint="e.g. --now 2026-12-24T15:00:00Z") from None
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


async def _serve(options: dict[str, Any]) -> int:
    import asyncio

    from alpaca_cli.sandbox.server import Sandbox

    sandbox = Sandbox(**options)
    try:
        await sandbox.start()
    except OSError as exc:
        raise UsageError(
            f"cannot listen on {options['host']}:{options['port']}: {exc.strerror or exc}",
            hint="pick another --port, or 0 for any free one",
        ) from None
    _announce(sandbox)
    if not _is_loopback(options["host"]):
        _say(f"sandbox: warning: bound to {options['host']}: anyone who can reach it can trade it")
    loop = asyncio.get_running_loop()
    stopped = asyncio.Event()
    received: list[int] = []

    def on_signal(signum: int) -> None:
        received.append(signum)
        stopped.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        await stopped.wait()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        try:
            await asyncio.wait_for(sandbox.stop(), _STOP_TIMEOUT)
        except TimeoutError:
            _say("sandbox: some connections did not close in time; exiting anyway")
    _say("sandbox: stopped")
    return int(ExitCode.INTERRUPTED) if received and received[0] == signal.SIGINT else 0


def _announce(sandbox: Any) -> None:
    """Say where the sandbox listens and which (throwaway) keys it accepts, on stderr."""
    url = sandbox.url
    ws = "ws" + url.removeprefix("http")
    lines = [
        f"sandbox: listening on {url}",
        f"  key id:        {sandbox.key_id}",
        f"  secret key:    {sandbox.secret_key}   (the sandbox's own throwaway secret)",
        f"  trading REST:  {url}   (TradingClient(..., paper=True, url_override=URL))",
        f"  data REST:     {url}   (Stock/CryptoHistoricalDataClient(..., url_override=URL))",
        f"  trade stream:  {ws}/stream",
        f"  data streams:  {ws}/v2/iex   {ws}/v2/sip   {ws}/v1beta3/crypto/us",
        f"  admin:         {url}/admin/faults, /admin/clock, /admin/rate-limit, /admin/stats, /admin/price",
        f"  market:        {_market_line(sandbox)}",
        f"  rate limit:    {_rate_line(sandbox)}",
        f"export ALPACA_CLI_SANDBOX_URL={url}",
        "Stop with Ctrl-C.",
    ]
    _say("\n".join(lines))


def _market_line(sandbox: Any) -> str:
    broker = sandbox.engine
    if broker.market_closed:
        return "closed (--market-closed)"
    if broker.always_open:
        return "always open (--always-open)"
    from alpaca_cli.sandbox.calendar import NEW_YORK

    state = "open" if broker.market_open else "closed"
    return f"NYSE hours, {state} now ({sandbox.now().astimezone(NEW_YORK):%Y-%m-%d %H:%M} New York)"


def _rate_line(sandbox: Any) -> str:
    if not sandbox.rate_limit:
        return "off (--rate-limit 0)"
    return f"{sandbox.rate_limit} requests a minute per key (429 beyond)"


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
