"""Stream health files: how a running stream tells `status` how it is doing.

Each long-running process that holds a stream (`tail`, `stream`) keeps its own
small JSON file in the platform state dir, `health-<env>-<stream>-<pid>.json`,
rewritten atomically whenever its health changes and at least every few
seconds (`Publisher`). One file per process: two commands never overwrite each
other, and a refused second `tail` cannot touch the running one's file.

`status` reads them all (`read_all`): a stream that said it stopped is
"stopped"; one whose writer process is gone without saying so, or that has not
been refreshed for a while, is "stale" rather than trusted. The files of dead
processes are removed when the next process of the same stream starts: a crash
stays visible as "stale" until the stream runs again, and files do not pile up.
They never contain secrets: the account is named by key id only.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncio


class StreamName(StrEnum):
    """The account's streams, as health files, `status` and `{"type":"stream"}` lines name them."""

    market_data = "market-data"
    trade_updates = "trade-updates"


STALE_AFTER = 30.0  # seconds without a refresh before a live writer is doubted
REFRESH_EVERY = 5.0  # seconds between writes when nothing changes
MIN_GAP = 1.0  # seconds between two writes: a burst of changes costs one write a second
_NAME = re.compile(r"health-(?P<env>.+?)-(?P<stream>market-data|trade-updates)(?:-(?P<pid>\d+))?\.json")


def state_dir() -> Path:
    """`$ALPACA_CLI_STATE_DIR`, else the platform's per-user state dir."""
    override = os.environ.get("ALPACA_CLI_STATE_DIR")
    if override:
        return Path(override)
    from platformdirs import user_state_path

    return user_state_path("alpaca-cli")


def health_path(environment: str, stream: StreamName, pid: int | None = None) -> Path:
    """This process's health file of `stream` (another process's with `pid`)."""
    return state_dir() / f"health-{environment}-{stream}-{pid or os.getpid()}.json"


def write(environment: str, stream: StreamName, health: dict[str, Any]) -> None:
    """Publish this process's health of one stream; `pid` and `written_at` are added here. Raises `OSError`."""
    from alpaca_cli.atomic import write_atomic
    from alpaca_cli.output import dumps

    record = {**health, "stream": str(stream), "pid": os.getpid(), "written_at": time.time()}
    write_atomic(health_path(environment, stream), (dumps(record) + "\n").encode(), mode=0o644)


def _files(environment: str) -> list[tuple[StreamName, int, Path]]:
    """(stream, writer pid, path) of every health file of `environment`; a file named without a pid
    (written by an older alpaca-cli) has pid 0."""
    try:
        names = os.listdir(state_dir())
    except OSError:
        return []
    found = []
    for name in sorted(names):
        match = _NAME.fullmatch(name)
        if match and match["env"] == environment:
            found.append((StreamName(match["stream"]), int(match["pid"] or 0), state_dir() / name))
    return found


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


def _read(path: Path, stream: StreamName, now: float) -> dict[str, Any]:
    """One file's record with `state` (running, stopped or stale), `stale` and `age_s` worked out."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(record, dict):
            raise ValueError("not an object")
        age = now - float(record.get("written_at", 0))
        pid = int(record.get("pid", 0) or 0)
    except (OSError, ValueError, TypeError):
        return {"stream": str(stream), "state": "stale", "stale": True, "error": f"unreadable health file {path}"}
    record["age_s"] = round(age, 1)
    if record.get("stopped"):
        record["state"] = "stopped"
    else:
        record["state"] = "stale" if not _alive(pid) or age > STALE_AFTER else "running"
    record["stale"] = record["state"] == "stale"
    return record


_RANK = {"running": 0, "stale": 1, "stopped": 2}


def read_all(environment: str, *, now: float | None = None) -> dict[StreamName, list[dict[str, Any]]]:
    """Every process's health of each stream: running ones first, then stale, then stopped,
    the most recently written first within each."""
    moment = time.time() if now is None else now
    found: dict[StreamName, list[dict[str, Any]]] = {name: [] for name in StreamName}
    for stream, _, path in _files(environment):
        found[stream].append(_read(path, stream, moment))
    for records in found.values():
        records.sort(key=lambda r: (_RANK[r["state"]], r.get("age_s", 0)))
    return found


def read(environment: str, stream: StreamName, *, now: float | None = None) -> dict[str, Any] | None:
    """The health that speaks for one stream: a running process's if any, else the latest word
    (stale or stopped); None if no process ever wrote one."""
    records = read_all(environment, now=now)[stream]
    return records[0] if records else None


def _remove_dead(environment: str, stream: StreamName) -> None:
    """Drop the files of this stream's processes that are gone (this process now speaks for it)."""
    for name, pid, path in _files(environment):
        if name == stream and pid != os.getpid() and not _alive(pid):
            with contextlib.suppress(OSError):  # someone else's to clean, or already gone
                path.unlink()


class Publisher:
    """Keeps this process's health file of one stream current without ever failing the stream.

    `record()` is the stream's health now. It is written at start, on every
    `changed()` (at most once per `MIN_GAP`), at least every `REFRESH_EVERY`
    seconds, and a last time with `stopped` when the run ends. Writes happen on
    a worker thread (each one fsyncs: the event loop must not wait for the disk
    between two fills). Health is a courtesy to `status`: a file that cannot be
    written (read-only or full disk, a directory in the way) must not stop a
    stream that works, so the failure is told once through `warn` (on the event
    loop), and later writes keep trying quietly.
    """

    def __init__(
        self,
        environment: str,
        stream: StreamName,
        record: Callable[[], dict[str, Any]],
        warn: Callable[[str], None],
    ) -> None:
        self.environment = environment
        self.stream = stream
        self._record = record
        self._warn = warn
        self._warned = False
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    def changed(self) -> None:
        """The health changed: write it soon."""
        if self._wake is not None:
            self._wake.set()

    async def __aenter__(self) -> Publisher:
        import asyncio

        self._wake = asyncio.Event()
        await asyncio.to_thread(_remove_dead, self.environment, self.stream)
        self._task = asyncio.create_task(self._keep(), name=f"{self.stream}-health")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """The last word: the stream stopped (whatever ended it)."""
        import asyncio

        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        record = self._record()
        record.update(stopped=True, connected=False)
        await self._write(record)

    async def _keep(self) -> None:
        import asyncio

        assert self._wake is not None
        loop = asyncio.get_running_loop()  # the loop's clock: the one its timeouts run on
        while True:
            self._wake.clear()
            await self._write({**self._record(), "stopped": False})
            written = loop.time()
            try:
                # `timeout`, not `wait_for`: 3.11's wait_for drops a cancel that lands as the wake does,
                # and this task would then outlive the `__aexit__` that awaits it.
                async with asyncio.timeout(REFRESH_EVERY):
                    await self._wake.wait()
            except TimeoutError:
                continue
            gap = MIN_GAP - (loop.time() - written)
            if gap > 0:
                await asyncio.sleep(gap)

    async def _write(self, record: dict[str, Any]) -> None:
        import asyncio

        try:
            await asyncio.to_thread(write, self.environment, self.stream, record)
        except OSError as exc:
            if not self._warned:
                self._warned = True
                path = health_path(self.environment, self.stream)
                self._warn(
                    f"cannot write the {self.stream} health file {path}: {exc.strerror or exc}; "
                    "`alpaca-cli status` will not see this stream"
                )
