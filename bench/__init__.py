"""Benchmarks for alpaca-cli: `python -m bench` runs them all, `python -m bench NAME` one.

A benchmark is a module in this package with a `NAME` (what `python -m bench
NAME` selects), a `DESCRIPTION` (one line) and `run() -> list[dict]`. Each
row is one measured case; the runner prints the rows as a table. Keys the
runner understands:

- `case`: what was measured (required);
- `baseline`: the `case` of the row this one is compared with (optional);
- `metric`: the key the ratio is taken on (default `median_ms`);
- `ratio`: set it yourself to override the computed `row[metric] / baseline[metric]`.

Every other key is a figure, printed as a column (`median_ms`, `p90_ms`,
`peak_rss_mb`, `bars_per_s`, ...). Baselines are measured in the same run as
the thing they are compared with, on the same machine, never remembered.

The helpers below are shared: `run_process` times a child, `peak_rss_mb`
measures its own peak resident set (see there why not `wait4`),
`SandboxProcess` runs `alpaca-cli sandbox serve` as a separate process the way
a user would, and `cli_env` isolates the CLI from the user's config and keys.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def alpaca_cli() -> str:
    """The installed `alpaca-cli` console script next to this interpreter, as users run it."""
    beside = Path(sys.executable).with_name("alpaca-cli")
    found = str(beside) if beside.exists() else shutil.which("alpaca-cli")
    if not found:
        raise RuntimeError("alpaca-cli is not installed in this environment (pip install -e .)")
    return found


PYCACHE = Path(tempfile.gettempdir()) / "alpaca-cli-bench-pycache"


def cli_env(home: Path, sandbox_url: str | None = None, **extra: str) -> dict[str, str]:
    """The caller's environment minus Alpaca settings; config and state live under `home`.

    Bytecode caching is switched on (into a private prefix, not the source
    tree) even where PYTHONDONTWRITEBYTECODE is set: an installed tool always
    has its bytecode, and compiling every module on every run would add tens
    of milliseconds that no user pays.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("APCA_", "ALPACA_CLI_"))}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    env["ALPACA_CLI_CONFIG"] = str(home / "config.toml")
    env["ALPACA_CLI_STATE_DIR"] = str(home / "state")
    if sandbox_url:
        env["ALPACA_CLI_SANDBOX_URL"] = sandbox_url
    env.update(extra)
    return env


@dataclass(frozen=True)
class Sample:
    """One child process: wall time and exit status."""

    seconds: float
    returncode: int


def run_process(argv: Sequence[str], env: Mapping[str, str] | None = None, timeout: float = 60) -> Sample:
    """Run `argv` to completion with output discarded, and time it.

    The wait blocks in `waitpid`: `subprocess.run(timeout=...)` polls with
    sleeps of up to 50 ms, which would round every figure up to that grain.
    A timer kills a hung child instead.
    """
    started = time.perf_counter()
    child = subprocess.Popen(
        list(argv),
        env=dict(env) if env is not None else None,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    killer = threading.Timer(timeout, child.kill)
    killer.start()
    try:
        code = child.wait()
    finally:
        killer.cancel()
    return Sample(time.perf_counter() - started, code)


def peak_rss_mb(argv: Sequence[str], env: Mapping[str, str] | None = None, runs: int = 3) -> float | None:
    """The child's own peak resident set, in MB, through GNU time (None where it is missing).

    `wait4` on our own child is no good here: Python starts children with
    vfork, and Linux carries the parent's high-water mark across the exec, so
    every child would look at least as big as this benchmark process.
    `/usr/bin/time` is a small C program whose fork starts the count afresh.
    """
    if not Path("/usr/bin/time").exists():
        return None
    peaks = []
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as report:
        for _ in range(runs):
            subprocess.run(
                ["/usr/bin/time", "-f", "%M", "-o", report.name, *argv],
                env=dict(env) if env is not None else None,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=120,
            )
            report.seek(0)
            peaks.append(int(report.read().split()[-1]))
    return round(max(peaks) / 1024, 1)


def summarize(
    case: str, samples: Sequence[Sample], baseline: str | None = None, rss_mb: float | None = None
) -> dict[str, Any]:
    """A table row from repeated runs: median and p90 in ms, peak RSS in MB, failures."""
    times = sorted(s.seconds * 1000 for s in samples)
    row: dict[str, Any] = {
        "case": case,
        "runs": len(samples),
        "min_ms": round(times[0], 1),
        "median_ms": round(statistics.median(times), 1),
        "p90_ms": round(times[min(len(times) - 1, int(len(times) * 0.9))], 1),
    }
    if rss_mb is not None:
        row["peak_rss_mb"] = rss_mb
    failed = sum(1 for s in samples if s.returncode != 0)
    if failed:
        row["failed"] = failed
    if baseline is not None:
        row["baseline"] = baseline
    return row


Case = tuple[Sequence[str], Mapping[str, str] | None]
"""A command line and its environment (None: inherit ours)."""


def interleaved(cases: Mapping[str, Case], runs: int, warmup: int = 2) -> dict[str, list[Sample]]:
    """Run every case `runs` times, round-robin, so drift on the machine hits all cases alike."""
    for _ in range(warmup):
        for argv, env in cases.values():
            run_process(argv, env)
    samples: dict[str, list[Sample]] = {name: [] for name in cases}
    for _ in range(runs):
        for name, (argv, env) in cases.items():
            samples[name].append(run_process(argv, env))
    return samples


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def admin(url: str, method: str, path: str, body: dict[str, Any] | None = None, *, timeout: float = 120) -> Any:
    """One call of the sandbox's admin API (`/admin/...`); the decoded JSON answer."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url + path, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as reply:
        return json.load(reply)


def wait_until(condition: Callable[[], Any], timeout: float, what: str) -> None:
    """Poll `condition` every 20 ms until it holds; RuntimeError naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.02)


def stop_process(process: subprocess.Popen[Any]) -> int:
    """SIGTERM, then SIGKILL after 10 s; the exit code."""
    if process.poll() is None:
        process.terminate()
    try:
        return process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


class SandboxProcess:
    """`alpaca-cli sandbox serve --port P` as its own process, for as long as the `with` lasts.

    `.url` is its base URL, `.env` a CLI environment pointing `--sandbox` at it
    (config and state in a private temporary directory).
    """

    def __init__(self, *serve_args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._home = tempfile.TemporaryDirectory(prefix="alpaca-cli-bench-")
        self.home = Path(self._home.name)
        self.env = cli_env(self.home, self.url)
        self._args = serve_args
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> SandboxProcess:
        self._process = subprocess.Popen(
            [alpaca_cli(), "sandbox", "serve", "--port", str(self.port), *self._args],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"sandbox exited with {self._process.returncode}")
            try:
                with urllib.request.urlopen(self.url + "/admin/stats", timeout=1):
                    return self
            except OSError:
                time.sleep(0.05)
        self.__exit__()
        raise RuntimeError("sandbox did not start listening within 20 s")

    def __exit__(self, *exc_info: object) -> None:
        if self._process is not None:
            stop_process(self._process)
        self._home.cleanup()
