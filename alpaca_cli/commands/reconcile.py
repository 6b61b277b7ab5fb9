"""`alpaca-cli reconcile --state PATH [--write] [--init]`: the broker snapshot is truth.

Compares the local state file with a fresh broker snapshot and prints every
difference; exit 0 in sync, 1 on drift (also after `--write` adopted it, so a
cron job can alert). The comparison itself is the pure core (`diff`); this
module only fetches, locks, writes and renders.

File rules:
- a missing file is an error (exit 2) unless `--init` or `--write` creates it
  from the snapshot (there is no local belief to compare yet, so that run
  reports in sync);
- `--init` never touches an existing file, even a corrupt one: moving a file
  aside is a decision for a person. `--write` is the idempotent "make it so";
- `--write` re-reads the file under its lock and, if another process
  (`tail --state`, `submit --state`) wrote it after this run read it, takes
  the snapshot again while holding the lock, so truth is never older than
  what it replaces and no concurrent update is lost.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from alpaca_cli.invocation import (
    DebugOption,
    OutputOption,
    ProfileOption,
    QuietOption,
    SandboxOption,
    start,
)

if TYPE_CHECKING:
    from alpaca_cli.bridge import Broker
    from alpaca_cli.core import Difference, OrderRecord, State
    from alpaca_cli.domain import Snapshot
    from alpaca_cli.output import Output

log = logging.getLogger(__name__)

# Table mode lists this many rows per kind; JSON mode always lists every one.
TABLE_ROWS_PER_KIND = 50


def reconcile(
    state: Annotated[
        Path,
        typer.Option("--state", help="The local state file to check against the broker.", dir_okay=False),
    ],
    write: Annotated[
        bool,
        typer.Option("--write", help="Adopt broker truth into the state file (creating it when missing)."),
    ] = False,
    init: Annotated[
        bool,
        typer.Option("--init", help="Create the state file from the broker; refuses an existing file."),
    ] = False,
    output: OutputOption = None,
    debug: DebugOption = False,
    profile: ProfileOption = None,
    sandbox: SandboxOption = False,
    quiet: QuietOption = False,
) -> int:
    """Compare the state file with the broker: exit 0 in sync, 1 on drift (even after --write)."""
    import asyncio

    from alpaca_cli import statefile
    from alpaca_cli.errors import UsageError

    invocation = start(output, debug, profile, sandbox, quiet=quiet)
    local: State | None = None
    if init:
        _refuse_existing(state)
    else:
        try:
            local = statefile.load(state)  # corrupt or unknown version: exit 2 before any request
        except statefile.StateFileMissing:
            if not write:
                raise UsageError(
                    f"state file {state} does not exist",
                    hint=f"create it from the broker: `alpaca-cli reconcile --init --state {state}`, or --write",
                ) from None
    return asyncio.run(_run(invocation.out, invocation.connection, state, local, write=write, init=init))


async def _run(out: Output, connection: Any, path: Path, local: State | None, *, write: bool, init: bool) -> int:
    from alpaca_cli import statefile
    from alpaca_cli.bridge import Broker
    from alpaca_cli.core import diff

    async with Broker(connection) as broker:
        believed = local.open_orders if local is not None else {}
        snapshot = await _fetch(out, broker, believed)
        if local is None:
            local = _create(path, snapshot, init=init)
            if local is None:
                _report(out, path, snapshot, [], written=True, created=True)
                return 0
        statefile.check_account(path, local, snapshot.account.id)
        if write:
            differences, snapshot = await _write(out, broker, path, local, snapshot)
        else:
            started = time.perf_counter()
            differences = diff(local, snapshot)
            log.debug("diff: %d differences in %.3fs", len(differences), time.perf_counter() - started)
    _report(out, path, snapshot, differences, written=write, created=False)
    return 1 if differences else 0


async def _fetch(out: Output, broker: Broker, believed: Mapping[str, OrderRecord]) -> Snapshot:
    """The broker snapshot, with a spinner on stderr when someone watches it."""
    started = time.perf_counter()
    with _spinner(out, "fetching the broker snapshot…"):
        snapshot = await broker.snapshot(believed)
    log.debug(
        "snapshot: %d open orders, %d positions, %d final lookups in %.3fs",
        len(snapshot.open_orders),
        len(snapshot.positions),
        len(snapshot.final_orders),
        time.perf_counter() - started,
    )
    return snapshot


@contextlib.contextmanager
def _spinner(out: Output, text: str) -> Iterator[None]:
    if not out.interactive:
        yield
        return
    with out.err.status(text, spinner="dots"):
        yield


def _refuse_existing(path: Path) -> None:
    from alpaca_cli.errors import UsageError

    if path.exists():
        raise UsageError(
            f"state file {path} already exists; --init only creates new files",
            hint="use --write to adopt broker truth into it, or move it aside first",
        )


def _create(path: Path, snapshot: Snapshot, *, init: bool) -> State | None:
    """Write a new state file equal to the snapshot; None when it did.

    A file that another process (`tail --state`) created meanwhile is never
    replaced: `--init` refuses it, `--write` returns it to be reconciled.
    """
    from alpaca_cli import statefile
    from alpaca_cli.core import initial_state

    with statefile.locked(path):
        if init:
            _refuse_existing(path)
        elif path.exists():
            return statefile.load(path)
        statefile.save(path, initial_state(snapshot))
    return None


async def _write(
    out: Output, broker: Broker, path: Path, local: State, snapshot: Snapshot
) -> tuple[list[Difference], Snapshot]:
    """Adopt broker truth under the lock; the differences found, and the snapshot used.

    The file is re-read inside the lock. When it changed since `local` was read
    (or holds open orders the snapshot did not look up), the snapshot may
    predate what another process recorded (a fill `tail` just applied, an
    order `submit` just placed), so it is taken again, lock held.
    """
    from alpaca_cli import statefile
    from alpaca_cli.core import adopt, apply_all, diff, recover

    with statefile.locked(path):
        current = statefile.load(path, account_id=snapshot.account.id)
        covered = {o.id for o in snapshot.open_orders} | {o.id for o in snapshot.final_orders}
        if current != local or not covered.issuperset(current.open_orders):
            log.debug("state file changed since it was read: taking the snapshot again under the lock")
            snapshot = await _fetch(out, broker, current.open_orders)
        differences = diff(current, snapshot)
        recovered = apply_all(current, recover(current, snapshot))
        statefile.save(path, adopt(recovered, snapshot, snapshot.taken_at))
    return differences, snapshot


# -- output -----------------------------------------------------------------------------------


def verdict(differences: list[Difference]) -> str:
    """One line: "in sync", or "N differences: 2 order_filled, 1 position_qty_changed"."""
    if not differences:
        return "in sync"
    from alpaca_cli.core import KINDS

    counts = Counter(d.kind for d in differences)
    noun = "difference" if len(differences) == 1 else "differences"
    parts = ", ".join(f"{counts[kind]} {kind}" for kind in KINDS if counts.get(kind))
    return f"{len(differences)} {noun}: {parts}"


def _report(
    out: Output,
    path: Path,
    snapshot: Snapshot,
    differences: list[Difference],
    *,
    written: bool,
    created: bool,
) -> None:
    if out.json:
        from alpaca_cli.output import records

        for difference in differences:
            out.emit(records.difference(difference))
        out.emit(records.summary(snapshot, differences, written=written, created=created))
        return
    if differences:
        out.console.print(_table(differences))
    line = verdict(differences)
    out.console.print(line, style="red" if differences else "green", markup=False, highlight=False)
    if created:
        out.message(f"created {path} from the broker snapshot", style="dim")
    elif written:
        out.message(f"adopted broker truth into {path}", style="dim")


def _table(differences: list[Difference]) -> Any:
    from rich.table import Table

    table = Table(title="Differences (local state vs broker)", title_justify="left")
    table.add_column("kind", no_wrap=True)
    table.add_column("symbol", no_wrap=True)
    for column in ("order id / client order id", "local", "broker", "detail"):
        table.add_column(column, overflow="fold")
    by_kind: dict[str, list[Difference]] = {}
    for difference in differences:  # already sorted by kind
        by_kind.setdefault(difference.kind, []).append(difference)
    for kind, rows in by_kind.items():
        for index, difference in enumerate(rows[:TABLE_ROWS_PER_KIND]):
            order = f"{difference.order_id}\n{difference.client_order_id}" if difference.order_id is not None else ""
            table.add_row(
                kind if index == 0 else "",
                difference.symbol or "",
                order,
                _values(difference.local),
                _values(difference.broker),
                difference.detail,
            )
        if len(rows) > TABLE_ROWS_PER_KIND:
            hidden = len(rows) - TABLE_ROWS_PER_KIND
            table.add_row("", "", "", "", "", f"… and {hidden} more {kind} (-o json lists them all)")
        table.add_section()
    return table


def _values(values: dict[str, Any] | None) -> str:
    """Side-by-side values as short text: `status new, qty 100, filled_qty 0`."""
    if values is None:
        return "-"
    from decimal import Decimal

    from alpaca_cli.text import decimal_text

    def text(value: Any) -> str:
        if isinstance(value, Decimal):
            return decimal_text(value)
        if isinstance(value, bool):
            return "yes" if value else "no"
        return str(value)

    return ", ".join(f"{key} {text(value)}" for key, value in values.items() if value is not None)
