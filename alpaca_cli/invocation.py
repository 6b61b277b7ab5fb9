"""What every command that talks to the broker starts from.

The common options (`--output/-o`, `--debug`, `--profile`, `--sandbox`,
`--quiet/-q`, and `--live` where orders are placed) are declared once here and
accepted both before the subcommand (the root callback records them in
`given`) and after it; a value after the subcommand wins. `start()` turns
them into an `Invocation`: the output sink, the resolved connection, and
logging set up so that only the tool's own logs are shown (library loggers
can dump frames that carry credentials).

Typer and the standard library only at import time: this module is loaded by
`--help` and shell completion.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

if TYPE_CHECKING:
    from pathlib import Path

    from alpaca_cli.bridge import Broker
    from alpaca_cli.config import Connection, Settings
    from alpaca_cli.output import Output


class OutputChoice(StrEnum):
    auto = "auto"
    table = "table"
    json = "json"


class ExportChoice(StrEnum):
    """The outputs of a command that exports rows: the common three, and CSV (a header, one row each)."""

    auto = "auto"
    table = "table"
    json = "json"
    csv = "csv"


OutputOption = Annotated[
    OutputChoice | None,
    typer.Option(
        "--output",
        "-o",
        help="auto (table on a terminal, JSON Lines when piped), table or json. Env: ALPACA_CLI_OUTPUT.",
        show_default=False,
    ),
]
DebugOption = Annotated[bool, typer.Option("--debug", help="Tracebacks and the tool's own debug logs on stderr.")]


def complete_profile(incomplete: str) -> list[str]:
    """The profile names of the config file, for TAB (tomllib only: completion must stay fast)."""
    import os
    import tomllib
    from pathlib import Path

    path = os.environ.get("ALPACA_CLI_CONFIG")
    if not path:
        from platformdirs import user_config_path

        path = str(user_config_path("alpaca-cli") / "config.toml")
    try:
        tables = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    names = [name for name, value in tables.items() if isinstance(value, dict)]
    return sorted(name for name in names if name.startswith(incomplete))


def complete_list(names: Sequence[str]) -> Callable[[str], list[str]]:
    """TAB for a comma-separated list of `names` (`--events fill,pa`): the next name, after the
    ones already typed. scripts/gen_completions.py writes the names into the static scripts."""

    def complete(incomplete: str) -> list[str]:
        done, comma, last = incomplete.rpartition(",")
        taken = set(done.split(","))
        return [done + comma + name for name in names if name.startswith(last) and name not in taken]

    return complete


ProfileOption = Annotated[
    str | None,
    typer.Option(
        "--profile",
        help="Named table of the config file. Env: ALPACA_CLI_PROFILE.",
        show_default=False,
        autocompletion=complete_profile,
    ),
]
QuietOption = Annotated[
    bool, typer.Option("--quiet", "-q", help="No banners, spinners or notices on stderr (errors still show).")
]
SandboxOption = Annotated[
    bool,
    typer.Option("--sandbox", help="Talk to the local sandbox (ALPACA_CLI_SANDBOX_URL, default 127.0.0.1:8765)."),
]
LiveOption = Annotated[
    bool, typer.Option("--live", help="Allow placing or canceling orders on a live account. Env: ALPACA_CLI_LIVE=1.")
]
YesOption = Annotated[bool, typer.Option("--yes", "-y", help="Skip the confirmation prompts (for scripts).")]


class _Flags:
    """Process-wide flags the entry point needs after a command has failed."""

    debug = False


flags = _Flags()


class Given:
    """The common options given before the subcommand (`alpaca-cli --sandbox status`).

    Plain classes here, not dataclasses: building one costs ~1 ms of every `--help`."""

    output: OutputChoice | None = None
    debug: bool = False
    profile: str | None = None
    sandbox: bool = False
    quiet: bool = False


given = Given()


class Invocation:
    """One command run: its output sink, its settings and the connection they resolve to."""

    def __init__(self, out: Output, settings: Settings, connection: Connection) -> None:
        self.out = out
        self.settings = settings
        self.connection = connection

    @property
    def live_allowed(self) -> bool:
        return self.settings.live

    def live_decision(self, *, yes: bool) -> Literal["go", "confirm"]:
        """`orders.live_guard` for this invocation: may an order-changing command go on?"""
        from alpaca_cli.orders import live_guard

        return live_guard(
            is_live=self.connection.is_live,
            live_allowed=self.live_allowed,
            yes=yes,
            interactive=sys.stdin.isatty(),
        )


async def preflight(
    broker: Broker, decision: str, action: str, *, state: Path | None = None, nothing: str = "nothing was sent"
) -> str | None:
    """What must hold before an order-changing request goes out: the state file is usable and
    this account's (else exit 2), and a live `action` is confirmed at the prompt (a "no" ends it,
    `nothing` done). The account id, when the account had to be read."""
    from alpaca_cli import orders

    if decision != "confirm" and state is None:
        return None
    account = await broker.account()
    if state is not None:
        from alpaca_cli import statefile

        statefile.load(state, account_id=account.id)  # missing, corrupt or foreign: exit 2, nothing sent
    if decision == "confirm" and not typer.confirm(
        orders.confirmation_text(account.account_number, action), default=False, err=True
    ):
        raise orders.NotConfirmed(f"not confirmed: {nothing}")
    return account.id


def setup_logging(debug: bool) -> None:
    """Our logs on stderr (debug with --debug, else warnings); libraries kept quiet.

    The handler writes to whatever `sys.stderr` is when a record is logged, not when it
    was made: a live view redirects stderr to print above its region, and a log line
    must too. (`logging` is imported here: `--help` does not need it.)"""
    import logging

    class StderrNow(logging.StreamHandler):  # type: ignore[type-arg]
        @property  # type: ignore[override]
        def stream(self) -> Any:
            return sys.stderr

        @stream.setter
        def stream(self, _: Any) -> None:
            pass

    flags.debug = debug
    handler = StderrNow()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    ours = logging.getLogger("alpaca_cli")
    ours.handlers[:] = [handler]
    ours.setLevel(logging.DEBUG if debug else logging.WARNING)
    ours.propagate = False
    # The SDK and websockets log reconnects with exception frames; the bridge
    # reports lifecycle itself, in one line, without anyone's locals.
    for name in ("alpaca", "websockets", "asyncio", "aiohttp", "urllib3"):
        noisy = logging.getLogger(name)
        noisy.setLevel(logging.CRITICAL + 1)
        noisy.propagate = False


def configure(
    output: OutputChoice | None,
    debug: bool,
    profile: str | None,
    sandbox: bool,
    live: bool = False,
    quiet: bool = False,
) -> tuple[Output, Settings, dict[str, Any]]:
    """The output sink and settings of one command run, before any broker is chosen, and the
    flags they were loaded with (for `config.origins`).

    Each option given after the subcommand wins over the same one given before it. A config
    file that holds a secret and that others can read is warned about here, once per run and
    even with `--quiet` (a warning, not a notice); `--debug` logs where every setting came from.
    """
    output = output or given.output
    debug = debug or given.debug
    flags_given = {
        "output": output.value if output else None,
        "profile": profile or given.profile,
        "sandbox": sandbox or given.sandbox,
        "live": live,
    }
    setup_logging(debug)
    from alpaca_cli.config import exposed_config_file, load_settings
    from alpaca_cli.output import Output

    settings = load_settings(**flags_given)
    out = Output(settings.output, debug=debug, quiet=quiet or given.quiet)
    exposed = exposed_config_file()
    if exposed is not None:
        import shlex

        fix = f"chmod 600 {shlex.quote(str(exposed))}"
        out.warn(f"config file {exposed} holds a secret and other users may read it: run {fix}")
    if debug:
        _log_settings(settings, flags_given)
    return out, settings, flags_given


def _log_settings(settings: Settings, flags_given: dict[str, Any]) -> None:
    """--debug: the profile, the URLs and where each setting came from, one line each (no secret)."""
    import logging

    from alpaca_cli.config import describe, origins

    rows = {name: (value, origin) for name, value, origin in describe(settings, origins(**flags_given))}
    log = logging.getLogger("alpaca_cli.config")
    profile, origin = rows["profile"]
    log.debug("profile %s (%s), config file %s", profile, origin.text(), rows["config_file"][0])
    urls = ("trading_url", "stream_url", "data_url", "data_stream_url")
    log.debug("%s: %s", rows["environment"][0], ", ".join(f"{name} {rows[name][0]}" for name in urls))
    log.debug("sources: %s", "; ".join(f"{name}: {origin.text()}" for name, (_, origin) in rows.items()))


def start(
    output: OutputChoice | None,
    debug: bool,
    profile: str | None,
    sandbox: bool,
    live: bool = False,
    quiet: bool = False,
) -> Invocation:
    """`configure`, then the connection to the broker those settings name (or a usage error)."""
    from alpaca_cli.config import resolve

    out, settings, _ = configure(output, debug, profile, sandbox, live, quiet)
    connection = resolve(settings)
    if connection.is_live:
        out.banner("live", connection.key_id)
    return Invocation(out=out, settings=settings, connection=connection)


def every_or_one(
    invocation: Invocation,
    ticker: str | None,
    every: Callable[[Broker], Awaitable[list[Any]]],
    one: Callable[[Broker, str], Awaitable[Any | None]],
    missing: str,
) -> list[Any]:
    """The one broker read of a `COMMAND [SYMBOL]` command (`positions`, `assets`): every item,
    or only `ticker`'s, whose absence is `missing` (a clean "no": exit 1)."""
    import asyncio

    from alpaca_cli.errors import BrokerRejected

    async def read() -> list[Any]:
        from alpaca_cli.bridge import Broker

        async with Broker(invocation.connection) as broker:
            if ticker is None:
                return await every(broker)
            found = await one(broker, ticker)
            if found is None:
                raise BrokerRejected(missing, status=404)
            return [found]

    return asyncio.run(read())


class StopSignal:
    """SIGINT/SIGTERM turned into an awaitable event, for long-running commands.

    The first signal asks for a graceful stop; `exit_code` tells the contract's
    answer afterwards (130 for SIGINT, 0 for SIGTERM).
    """

    def __init__(self) -> None:
        import asyncio

        self.event = asyncio.Event()
        self.received: int | None = None

    def install(self) -> None:
        import asyncio

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_signal, sig)

    def uninstall(self) -> None:
        import asyncio

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)

    def _on_signal(self, sig: int) -> None:
        if self.received is None:
            self.received = sig
        self.event.set()

    @property
    def exit_code(self) -> int:
        return 130 if self.received == signal.SIGINT else 0
