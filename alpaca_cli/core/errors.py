"""The core's own errors: what went wrong in its terms, never how a command should say it.

The core knows no files, flags or exit codes, so it cannot word a hint such as
"use another --state path". The edges that do (`statefile.check_account`, and
the entry point for anything that reaches it) translate these once into the
CLI's `UsageError`.
"""

from __future__ import annotations


class StateError(Exception):
    """A state that cannot be used as asked. `kind` names the case (stable text)."""

    kind = "state"


class OtherAccount(StateError):
    """A state compared with, or stored for, another account than its own."""

    kind = "other_account"

    def __init__(self, state_account: str, other_account: str) -> None:
        super().__init__(f"the state belongs to account {state_account}, not to {other_account}")
        self.state_account = state_account
        self.other_account = other_account


def check_account(state_account: str, account_id: str) -> None:
    """Refuse to use one account's state with another account: the one check of it."""
    if state_account != account_id:
        raise OtherAccount(state_account, account_id)
