"""The tool's own errors, each carrying the contract's exit code.

Everything that can go wrong in front of a user ends as one of these, so that
the entry point can print one clear line and exit with the right code without
knowing which layer failed.
"""

from __future__ import annotations

import sys
from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    DRIFT = 1  # a clean "no": drift found, order ended badly, check failed
    USAGE = 2
    AUTH = 3
    UNREACHABLE = 4
    CONNECTION_LIMIT = 5
    LOCAL_STEP_FAILED = 6  # done at the broker, but a local step after it failed
    INTERNAL = 70  # a bug of the tool's own (sysexits' EX_SOFTWARE): one line, traceback with --debug
    TIMED_OUT = 124  # `submit --wait --timeout` ran out while the order still works (as timeout(1))
    INTERRUPTED = 130


class CliError(Exception):
    """An error meant for the user: one line on stderr, then `exit_code`."""

    exit_code: ExitCode = ExitCode.USAGE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def line(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class UsageError(CliError):
    """Bad flag, bad value, unreadable or corrupt state file."""

    exit_code = ExitCode.USAGE


class AuthError(CliError):
    """The broker refused our credentials or permissions (401/403, stream unauthorized)."""

    exit_code = ExitCode.AUTH


class UnreachableError(CliError):
    """The broker could not be reached, or kept failing after retries."""

    exit_code = ExitCode.UNREACHABLE


class RouteNotFound(UnreachableError):
    """The broker has no such route (a 404 that is not Alpaca's "not found"): a wrong base URL.

    Unlike other broker failures, it proves the request was not acted on.
    """


class ConnectionLimitError(CliError):
    """Another process already holds this account's stream."""

    exit_code = ExitCode.CONNECTION_LIMIT


class LocalStepFailed(CliError):
    """The broker action happened, but a local step after it failed (e.g. recording it).

    The line must say what was done at the broker and what to run next, since
    the user cannot tell from the exit code alone that the order exists.
    """

    exit_code = ExitCode.LOCAL_STEP_FAILED


class BrokerRejected(CliError):
    """The broker understood the request and said no (403 buying power, 422, 404).

    `status` and `code` are kept so that callers (submit's duplicate-id path,
    cancel's not-found path) can react to the specific refusal.
    """

    exit_code = ExitCode.DRIFT

    def __init__(self, message: str, *, status: int, code: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def from_core(error: Exception, path: object | None = None) -> CliError | None:
    """The user's line for an error the pure core raised (`alpaca_cli.core.errors`), or None
    for any other; `path` names the state file when the caller knows it.

    The one translation of core errors. The core's module is looked up, not
    imported: loading the core loads pydantic, which `--help` must not pay for,
    and an error of it cannot exist before it is loaded.
    """
    core = sys.modules.get("alpaca_cli.core.errors")
    if core is None or not isinstance(error, core.StateError):
        return None
    where = f"state file {path}" if path is not None else "the state"
    if isinstance(error, core.OtherAccount):
        return UsageError(
            f"{where} belongs to account {error.state_account}, not to {error.other_account}",
            hint="use the state file of this account, or another --state path",
        )
    return UsageError(f"{where}: {error}")
