"""The state file on disk: validated on the way in, atomic and locked on the way out.

Several processes may own one state file at once (`tail --state F`,
`submit --state F`, `reconcile --write --state F`), so every change is a
read-modify-write under an exclusive lock on `F.lock` (`update`, or `locked`
around `load`/`save`). Readers need no lock: a write never changes the file
in place but renames a complete, fsynced temp file over it, so a reader (or a
crash at any moment) sees either the old document or the new one.

A file that cannot be trusted (truncated, not JSON, wrong shape, unknown
version, another account) raises `UsageError` (exit 2) and is left exactly as
it is; so does every OS error on the file, its lock or its directory
(read-only or full filesystem, permission, a directory in the way), named by
path in one line.

A state path that is a symbolic link is read and written through: the lock
and the temp file sit next to the link's final target, which is replaced; the
link stays. The lock goes with the real file, not with the name it was given,
because it guards that file: `tail --state link` and `reconcile --write
--state target` must exclude each other. A dangling link or a loop of links
is refused (exit 2) with the reason.

A file that does not exist raises `StateFileMissing`, a `UsageError`
subclass, so that callers which can create it from a broker snapshot
(`reconcile --init/--write`, `tail --state`) catch it or pass `create=` to
`update`, while everyone else simply exits 2 with a hint.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from alpaca_cli.atomic import target, write_atomic
from alpaca_cli.errors import UsageError, from_core

if TYPE_CHECKING:
    from alpaca_cli.core.state import State

# How long a writer waits for another process's read-modify-write. Those take
# milliseconds, so running out of patience means a stuck process.
LOCK_TIMEOUT = 30.0
# `write_atomic` names its temp files `.NAME.<random>.tmp`.
_TEMP_SUFFIX = ".tmp"
# The document this process last read or wrote, per file: (digest of its bytes, state).
# `update` re-reads the file under its lock before every change, and while no other
# process wrote it those are the same bytes: validating 10,000 orders again costs
# about 0.1 s each time (a `tail --state` catch-up read the same file four times).
_known: dict[Path, tuple[bytes, State]] = {}


class StateFileMissing(UsageError):
    """The state file does not exist (yet): create it from a broker snapshot."""

    def __init__(self, path: Path) -> None:
        super().__init__(
            f"state file {path} does not exist",
            hint=f"create it with `alpaca-cli reconcile --init --state {path}`",
        )
        self.path = path


def lock_path(path: str | os.PathLike[str]) -> Path:
    """The lock file that guards `path`: `REAL.lock` next to the file a write replaces
    (`path` itself, or the final target of a symlink)."""
    real = real_path(path)
    return real.with_name(real.name + ".lock")


def real_path(path: str | os.PathLike[str]) -> Path:
    """The file behind `path` (itself, or a symlink's final target); exit 2 for a dangling link or a loop."""
    try:
        return target(Path(path))
    except OSError as exc:
        raise UsageError(
            f"state file {path} cannot be used: {exc.strerror or exc}",
            hint="point --state at a regular file, or at a link to one",
        ) from None


@contextlib.contextmanager
def locked(path: str | os.PathLike[str], *, timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
    """Hold the state file's lock for a read-modify-write.

    Re-entrant within a process (nested `locked`/`update`/`save` on the same
    path do not deadlock); exclusive between processes and between threads.
    Temp files that a killed writer left behind are removed while the lock is
    held, since no other writer can be mid-write then.
    """
    from filelock import FileLock, Timeout

    real = real_path(path)
    guard = lock_path(real)
    lock = FileLock(guard, is_singleton=True)
    try:
        lock.acquire(timeout=timeout)
    except Timeout:
        raise UsageError(
            f"state file {path} stayed locked for {timeout:g} s by another process",
            hint=f"check which alpaca-cli holds {guard}",
        ) from None
    except OSError as exc:
        raise UsageError(
            f"cannot lock state file {path}: cannot create {guard}: {exc.strerror or exc}",
            hint=f"check that {guard.parent} is writable and {guard} is not a directory",
        ) from None
    try:
        _remove_stale_temps(real)
        yield
    finally:
        lock.release()


def load(path: str | os.PathLike[str], *, account_id: str | None = None) -> State:
    """The validated state in `path`; with `account_id`, it must be that account's.

    Raises `StateFileMissing` when the file does not exist, `UsageError` when
    it cannot be read or trusted.
    """
    from pydantic import ValidationError

    from alpaca_cli.core.state import State

    path = Path(path)
    real = real_path(path)  # a dangling link is an error, not a missing file to create
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise StateFileMissing(path) from None
    except OSError as exc:
        raise UsageError(
            f"cannot read state file {path}: {exc.strerror or exc}",
            hint="check the path and its permissions",
        ) from None
    digest = _digest(data)
    known = _known.get(real)
    if known is not None and known[0] == digest:
        state = known[1]
    else:
        try:
            state = State.model_validate_json(data)
        except ValidationError as exc:
            raise _invalid(path, data, exc) from None
        _known[real] = (digest, state)
    if account_id is not None:
        check_account(path, state, account_id)
    return state


def check_account(path: str | os.PathLike[str], state: State, account_id: str) -> None:
    """The one check that a state is this account's: another account's file is an input
    error naming the file (exit 2), never a difference."""
    from alpaca_cli.core.errors import StateError
    from alpaca_cli.core.errors import check_account as same_account

    try:
        same_account(state.account_id, account_id)
    except StateError as error:
        raise from_core(error, path) or error from None


def save(path: str | os.PathLike[str], state: State) -> None:
    """Write `state` to `path` atomically, mode 0600, under the file's lock."""
    path = Path(path)
    data = state.to_json()
    with locked(path):
        _write_atomically(path, data, state)


def update(
    path: str | os.PathLike[str],
    change: Callable[[State], State],
    *,
    account_id: str | None = None,
    create: Callable[[], State] | None = None,
) -> State:
    """Locked read-modify-write: load, `change`, save; returns the new state.

    When the file is missing, `create()` supplies the starting state (e.g.
    `lambda: initial_state(snapshot)`); without `create` the missing
    file raises `StateFileMissing`. Nothing is written when `change` returns
    an equal state (a replayed event), so duplicates cost no fsync.
    """
    path = Path(path)
    with locked(path):
        before: State | None
        try:
            before = start = load(path, account_id=account_id)
        except StateFileMissing:
            if create is None:
                raise
            before, start = None, create()
        if account_id is not None:
            check_account(path, start, account_id)
        after = change(start)
        if before is None or (after is not before and after != before):
            _write_atomically(path, after.to_json(), after)
        return after


def _digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=32).digest()


def _write_atomically(path: Path, data: bytes, state: State) -> None:
    """`write_atomic` (through a symlink: to its target), with a failure told as one line;
    the old file stays as it was. `state` is what `data` reads back as."""
    real = real_path(path)
    _known.pop(real, None)
    try:
        write_atomic(real, data, mode=0o600)
        _known[real] = (_digest(data), state)
    except OSError as exc:
        shown = path if real == path else f"{path} (-> {real})"
        raise UsageError(
            f"cannot write state file {shown}: {exc.strerror or exc}; the file is unchanged",
            hint=f"check that {real.parent} is writable and has free space",
        ) from None


def _remove_stale_temps(path: Path) -> None:
    with contextlib.suppress(OSError):
        for temp in path.parent.glob(f".{_glob_escape(path.name)}.*{_TEMP_SUFFIX}"):
            with contextlib.suppress(OSError):
                temp.unlink()


def _glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def _invalid(path: Path, data: bytes, exc: Exception) -> UsageError:
    """One clear line for a state file that cannot be trusted."""
    from pydantic import ValidationError

    recreate = f"move it aside and recreate it with `alpaca-cli reconcile --init --state {path}`"
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        what = "is empty" if not data.strip() else "is not valid JSON (truncated or corrupt)"
        return UsageError(f"state file {path} {what}", hint=recreate)
    if not isinstance(document, dict):
        return UsageError(f"state file {path} is not a state document", hint=recreate)
    version = document.get("version")
    if version is None:
        return UsageError(
            f"state file {path} has no version field (not an alpaca-cli state file)",
            hint=recreate,
        )
    if version != 1:
        return UsageError(
            f"state file {path} has version {version!r}, this alpaca-cli reads version 1",
            hint=f"use the alpaca-cli that wrote it, or {recreate}",
        )
    first = exc.errors()[0] if isinstance(exc, ValidationError) and exc.errors() else None
    where = ".".join(str(part) for part in first["loc"]) if first else ""
    reason = first["msg"] if first else str(exc)
    return UsageError(
        f"state file {path} is not a valid state document ({where + ': ' if where else ''}{reason})",
        hint=recreate,
    )
