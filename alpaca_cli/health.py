"""Stream health files: how a running stream tells `status` how it is doing.

Each long-running stream (market data, trade updates) rewrites one small JSON
file in the platform state dir, atomically, whenever its health changes and at
least every few seconds. `status` reads them: a stream that said it stopped is
"stopped"; one whose writer process is gone without saying so, or that has not
been refreshed for a while, is "stale" rather than trusted. A file belongs to
the live process that wrote it until that process stops: a second process (a
`tail` refused with exit 5) never overwrites it. They never contain secrets:
the account is named by key id only.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from alpaca_cli.atomic import write_atomic

STREAMS = ("market-data", "trade-updates")
STALE_AFTER = 30.0  # seconds without a refresh before a live writer is doubted
REFRESH_EVERY = 5.0


def state_dir() -> Path:
    """`$ALPACA_CLI_STATE_DIR`, else the platform's per-user state dir."""
    override = os.environ.get("ALPACA_CLI_STATE_DIR")
    if override:
        return Path(override)
    from platformdirs import user_state_path

    return user_state_path("alpaca-cli")


def health_path(environment: str, stream: str) -> Path:
    return state_dir() / f"health-{environment}-{stream}.json"


def write(environment: str, stream: str, health: dict[str, Any]) -> None:
    """Publish one stream's health; `pid` and `written_at` are added here. Raises `OSError`."""
    from alpaca_cli.output import dumps

    record = {**health, "stream": stream, "pid": os.getpid(), "written_at": time.time()}
    write_atomic(health_path(environment, stream), (dumps(record) + "\n").encode(), mode=0o644)


class Publisher:
    """Keeps one stream's health file current without ever failing the stream.

    Health is a courtesy to `status`; a file that cannot be written (read-only
    or full disk, a directory in the way) must not stop a stream that works, so
    the failure is told once through `warn` (one line naming the file) and the
    stream goes on; later writes keep trying, quietly.
    """

    def __init__(self, environment: str, stream: str, warn: Callable[[str], None]) -> None:
        self.environment = environment
        self.stream = stream
        self._warn = warn
        self._warned = False

    def write(self, health: dict[str, Any]) -> None:
        """Publish `health` unless another running process owns the file; a failure is warned once, never raised."""
        if _held_by_another(health_path(self.environment, self.stream)):
            return
        try:
            write(self.environment, self.stream, health)
        except OSError as exc:
            if not self._warned:
                self._warned = True
                path = health_path(self.environment, self.stream)
                self._warn(
                    f"cannot write the {self.stream} health file {path}: {exc.strerror or exc}; "
                    "`alpaca-cli status` will not see this stream"
                )


def _held_by_another(path: Path) -> bool:
    """The file is another live process's, which has not stopped and keeps it fresh."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        pid = int(record.get("pid", 0) or 0)
        fresh = time.time() - float(record.get("written_at", 0)) <= STALE_AFTER
    except (OSError, ValueError, TypeError, AttributeError):
        return False
    return pid != os.getpid() and not record.get("stopped") and fresh and _alive(pid)


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read(environment: str, stream: str, *, now: float | None = None) -> dict[str, Any] | None:
    """One stream's last health, with `state` (running, stopped or stale), `stale` and `age_s`
    worked out; None if never written."""
    try:
        record = json.loads(health_path(environment, stream).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {"stream": stream, "state": "stale", "stale": True, "error": "unreadable health file"}
    age = (now or time.time()) - float(record.get("written_at", 0))
    writer_gone = not _alive(int(record.get("pid", 0) or 0))
    record["age_s"] = round(age, 1)
    if record.get("stopped"):
        record["state"] = "stopped"
    else:
        record["state"] = "stale" if writer_gone or age > STALE_AFTER else "running"
    record["stale"] = record["state"] == "stale"
    return record
