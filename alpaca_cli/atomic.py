"""Crash-safe file replacement, shared by the state file and the health files.

A reader (or a process killed mid-write) only ever sees the old bytes or the
new bytes: write a temporary file in the same directory, fsync it, rename it
over the target, then fsync the directory so the rename itself is durable.

A path that is a symbolic link is written through: the temp file goes next to
the link's final target and is renamed over the target, so the link stays a
link (renaming over the link itself would silently turn it into a regular
file and leave the target stale). A link to nothing, or a loop of links, is
refused with an `OSError` that says so.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path


def target(path: Path) -> Path:
    """The file a write to `path` replaces: `path` itself, or the final target of a link.

    Raises `OSError` (with a reason in `strerror`) for a dangling link or a loop.
    """
    if not path.is_symlink():
        return path
    try:
        path.stat()
    except FileNotFoundError:
        raise OSError(
            errno.ENOENT, f"it is a symbolic link to {os.readlink(path)}, which does not exist", str(path)
        ) from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise OSError(errno.ELOOP, "it is a loop of symbolic links", str(path)) from None
        raise
    return Path(os.path.realpath(path))


def write_atomic(path: Path, data: bytes, *, mode: int = 0o600) -> None:
    """Replace `path` (through a symlink: its target) with `data` atomically; the file ends with `mode`."""
    path = target(path)
    directory = path.parent
    directory.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
