"""The `alpaca-cli` entry point: the Typer app and the contract's error handling.

Every command module is imported here, so each keeps only typer and the
standard library at its top level; alpaca-py, pydantic, aiohttp and Rich load
inside the command that needs them. That keeps `--help` and TAB completion
fast (see bench/startup.py).
"""

from __future__ import annotations

import atexit
import gc
import os
import sys
from difflib import get_close_matches

import click
import typer
import typer.core
import typer.main
import typer.models

from alpaca_cli import __version__
from alpaca_cli.errors import CliError, ExitCode, from_core
from alpaca_cli.invocation import (
    DebugOption,
    OutputOption,
    ProfileOption,
    QuietOption,
    SandboxOption,
    flags,
    given,
)

# At exit the interpreter would free every object one by one, walking the reference cycles that
# pydantic's and alpaca-py's classes form: about 40 ms of a `status` whose work is done (more than
# its four requests). Frozen, they go back to the OS with the process. Nothing is lost: atexit
# handlers still run and stdio is still flushed; only a collection of cycles is skipped, and no
# file, state or socket of ours waits for one to be closed. (So asyncio's and aiohttp's "never
# closed" warnings, which come from that collection, are not printed at exit either: leaks are
# checked in-process, e.g. tests/test_bridge_websocket.py.)
atexit.register(gc.freeze)

# name: (module, attribute, the one-line help the top-level `--help` shows). A module
# is imported only when its command runs, completes or shows its own help;
# tests/test_startup.py checks these lines against the commands themselves.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "status": ("status", "status", "Account, market clock, positions and open orders, and the health of both streams."),
    "submit": ("submit", "submit", "Place one order: validated locally, never sent twice, guarded on live accounts."),
    "cancel": ("cancel", "cancel", "Cancel an order by id, by client order id, or all open orders."),
    "positions": ("positions", "positions", "List open positions, or show one."),
    "close": ("close", "close", "Close a position at market (all or part of it), or every position; never twice."),
    "replace": ("replace", "replace", "Replace a working order with a changed one; never twice."),
    "activities": (
        "activities",
        "activities",
        "Account activities (fills, dividends, transfers, fees), oldest first, every page of the range.",
    ),
    "clock": ("clock", "clock", "The market clock: open or closed now, and the next open and close."),
    "calendar": ("clock", "calendar", "Trading days and their hours (New York time) from --start to --end."),
    "assets": ("assets", "assets", "Every active US equity, or one symbol (unknown: exit 1), with what it allows."),
    "bars": ("bars", "bars", "Historical bars, oldest first per symbol, paged through the whole range."),
    "quote": (
        "quote",
        "quote",
        "Latest trade, bid/ask and minute bar per symbol; exit 1 when the broker has nothing for one of them.",
    ),
    "reconcile": (
        "reconcile",
        "reconcile",
        "Compare the state file with the broker: exit 0 in sync, 1 on drift (even after --write).",
    ),
    "config": (
        "config",
        "config",
        "Show the resolved environment, profile, URLs and key id, and where each setting came from.",
    ),
    "demo": ("demo", "demo", "Watch fills live, lose some, recover them: against a local sandbox, no account needed."),
    "orders": ("orders", "app", "List orders, or show one."),
    "sandbox": ("sandbox", "app", "A local paper broker speaking Alpaca's protocols (no account, no network)."),
    "stream": (
        "stream",
        "app",
        "Live market data: bars, quotes, trades, or several at once (stream bars,quotes AAPL).",
    ),
    "tail": ("tail", "app", "Follow account events as they happen."),
}


class LazyGroup(typer.core.TyperGroup):
    """The root group: builds a subcommand from its module only when that subcommand is asked
    for, so `alpaca-cli --help` imports no command module (bench/startup.py)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            self.commands[cmd_name] = load_command(cmd_name)
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The table of commands from `COMMANDS`' lines, as Click would draw it from the commands."""
        limit = formatter.width - 6 - max(len(name) for name in COMMANDS)
        rows = [
            (name, click.Command(name, help=line).get_short_help_str(limit)) for name, (_, _, line) in COMMANDS.items()
        ]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        try:
            return click.Group.resolve_command(self, ctx, args)
        except click.UsageError as error:
            matches = get_close_matches(args[0], list(COMMANDS)) if args else []
            if matches:
                error.message = f"{error.message.rstrip('.')}. Did you mean {matches[0]!r}?"
            raise


def load_command(name: str) -> click.Command:
    """The Click command `name` as Typer would have built it at start-up."""
    module, attribute, _ = COMMANDS[name]
    # `__import__`, not `importlib.import_module`: `-X importtime` (tests/test_startup.py) sees only the former
    target = getattr(__import__(f"alpaca_cli.commands.{module}", fromlist=[attribute]), attribute)
    if isinstance(target, typer.Typer):
        return typer.main.get_group_from_info(
            typer.models.TyperInfo(target, name=name),
            pretty_exceptions_short=app.pretty_exceptions_short,
            suggest_commands=True,
            rich_markup_mode=None,
        )
    return typer.main.get_command_from_info(
        typer.models.CommandInfo(name=name, callback=target),
        pretty_exceptions_short=app.pretty_exceptions_short,
        rich_markup_mode=None,
    )


app = typer.Typer(
    name="alpaca-cli",
    help="Composable commands for trading through Alpaca: live fills, bars, reconcile, safe order entry.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,  # tracebacks with locals could show credentials
    rich_markup_mode=None,  # plain help: Rich's help renderer costs ~60 ms of start-up
    context_settings={"help_option_names": ["-h", "--help"]},
    cls=LazyGroup,
    add_completion=False,  # the static scripts in completions/ start no Python (README: Shell completion)
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"alpaca-cli {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
    output: OutputOption = None,
    debug: DebugOption = False,
    profile: ProfileOption = None,
    sandbox: SandboxOption = False,
    quiet: QuietOption = False,
) -> None:
    """Composable commands for trading through Alpaca. Paper by default; `--sandbox` needs no account.

    The common options work before the subcommand too: `alpaca-cli --sandbox -o json status`.
    """
    given.output, given.debug, given.profile, given.sandbox, given.quiet = output, debug, profile, sandbox, quiet
    flags.debug = debug


def main(argv: list[str] | None = None) -> None:
    """Run the app; turn every failure into one stderr line and the contract's exit code."""
    command = typer.main.get_command(app)
    try:
        result = command.main(args=argv, prog_name="alpaca-cli", standalone_mode=False)
        code = result if isinstance(result, int) else 0
    except (Exception, KeyboardInterrupt) as error:
        code = _exit_code(error)
    _close_stdout_quietly()
    sys.exit(code)


def _exit_code(error: BaseException) -> int:
    """The contract's exit code for a failed run, after its one stderr line (`output` is
    imported only here: `--help` does not need it)."""
    from alpaca_cli.output import ReaderGone, error_line

    if isinstance(error, CliError):
        if flags.debug:
            _print_traceback()
        error_line(error.line())
        return int(error.exit_code)
    if isinstance(error, typer.Abort):
        error_line("aborted")
        return 1
    if isinstance(error, click.exceptions.NoArgsIsHelpError):  # bare `alpaca-cli` (or group): help is the answer
        typer.echo(error.ctx.get_help())
        return 0
    if isinstance(error, click.ClickException):  # usage errors from argument parsing
        context = getattr(error, "ctx", None)
        hint = f" (see '{context.command_path} --help')" if context is not None else ""
        error_line(_one_suggestion(error.format_message()) + hint)
        return error.exit_code
    if isinstance(error, ReaderGone):
        return 0
    if isinstance(error, KeyboardInterrupt):
        return 130
    translated = from_core(error)  # the pure core's own errors are worded here, not where raised
    if translated is not None:
        error_line(translated.line())
        return int(translated.exit_code)
    if flags.debug:  # a bug of ours: still one line, the traceback only with --debug
        _print_traceback()
    error_line(
        f"internal error: {type(error).__name__}: {' '.join(str(error).split())[:200]}"
        " (a bug in alpaca-cli: run again with --debug and report the traceback)"
    )
    return int(ExitCode.INTERNAL)


def _one_suggestion(message: str) -> str:
    """Typer and Click each add their "Did you mean" to a mistyped command: keep the first."""
    head, marker, rest = message.partition(" Did you mean")
    return head + marker + rest.split(" Did you mean")[0] if marker else message


def _close_stdout_quietly() -> None:
    """`alpaca-cli ... | head -1`: once the reader is gone, exit without a traceback."""
    try:
        sys.stdout.flush()
    except (BrokenPipeError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def _print_traceback() -> None:
    """--debug's traceback (`traceback` costs ~5 ms of start-up, so it loads only here)."""
    import traceback

    traceback.print_exc()
