"""The `alpaca-cli` entry point: the Typer app and the contract's error handling.

Every command module is imported here, so each keeps only typer and the
standard library at its top level; alpaca-py, pydantic, aiohttp and Rich load
inside the command that needs them. That keeps `--help` and TAB completion
fast (see bench/startup.py).
"""

from __future__ import annotations

import os
import sys
import traceback

import click
import typer

from alpaca_cli import __version__
from alpaca_cli.commands import (
    activities,
    assets,
    bars,
    cancel,
    clock,
    close,
    demo,
    orders,
    positions,
    quote,
    reconcile,
    replace,
    sandbox,
    status,
    stream,
    submit,
    tail,
)
from alpaca_cli.errors import CliError, ExitCode
from alpaca_cli.invocation import (
    DebugOption,
    OutputOption,
    ProfileOption,
    QuietOption,
    SandboxOption,
    flags,
    given,
)
from alpaca_cli.output import ReaderGone, error_line

app = typer.Typer(
    name="alpaca-cli",
    help="Composable commands for trading through Alpaca: live fills, bars, reconcile, safe order entry.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,  # tracebacks with locals could show credentials
    rich_markup_mode=None,  # plain help: Rich's help renderer costs ~60 ms of start-up
    context_settings={"help_option_names": ["-h", "--help"]},
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


app.command("status")(status.status)
app.command("submit")(submit.submit)
app.command("cancel")(cancel.cancel)
app.command("positions")(positions.positions)
app.command("close")(close.close)
app.command("replace")(replace.replace)
app.command("activities")(activities.activities)
app.command("clock")(clock.clock)
app.command("calendar")(clock.calendar)
app.command("assets")(assets.assets)
app.command("bars")(bars.bars)
app.command("quote")(quote.quote)
app.command("reconcile")(reconcile.reconcile)
app.command("demo")(demo.demo)
app.add_typer(orders.app, name="orders")
app.add_typer(sandbox.app, name="sandbox")
app.add_typer(stream.app, name="stream")
app.add_typer(tail.app, name="tail")


def main(argv: list[str] | None = None) -> None:
    """Run the app; turn every failure into one stderr line and the contract's exit code."""
    command = typer.main.get_command(app)
    try:
        result = command.main(args=argv, prog_name="alpaca-cli", standalone_mode=False)
        code = result if isinstance(result, int) else 0
    except CliError as error:
        if flags.debug:
            traceback.print_exc()
        error_line(error.line())
        code = int(error.exit_code)
    except typer.Abort:
        error_line("aborted")
        code = 1
    except click.exceptions.NoArgsIsHelpError as error:  # bare `alpaca-cli` (or group): help is the answer
        typer.echo(error.ctx.get_help())
        code = 0
    except click.ClickException as error:  # usage errors from argument parsing
        context = getattr(error, "ctx", None)
        hint = f" (see '{context.command_path} --help')" if context is not None else ""
        error_line(_one_suggestion(error.format_message()) + hint)
        code = error.exit_code
    except ReaderGone:
        code = 0
    except KeyboardInterrupt:
        code = 130
    except Exception as error:  # a bug of ours: still one line, the traceback only with --debug
        if flags.debug:
            traceback.print_exc()
        error_line(
            f"internal error: {type(error).__name__}: {' '.join(str(error).split())[:200]}"
            " (a bug in alpaca-cli: run again with --debug and report the traceback)"
        )
        code = int(ExitCode.INTERNAL)
    _close_stdout_quietly()
    sys.exit(code)


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
