"""Files the tool reads and writes, when the machine says no: real faults, the real entry point.

A read-only filesystem and a full one are real tmpfs mounts (root only; the
tests that need them skip with the reason elsewhere), a directory in the way
is a real directory, a symlink a real symlink. What they check is the
contract: exit 2 with one line naming the path, the old file intact, never a
traceback; a running `tail --state` that can no longer save stops (and
prints nothing it did not save); `submit --state` that placed the order but
could not record it exits 6 and says what to run; a health file that cannot
be written is one warning, never a failure; stderr is never wrapped.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from alpaca.trading.client import TradingClient
from alpaca.trading.requests import LimitOrderRequest, MarketOrderRequest
from helpers import CLI, cli_env, json_lines, run_cli, spawn_cli

from alpaca_cli import statefile

pytestmark = pytest.mark.timeout(60)

ERROR = "alpaca-cli: error:"


@pytest.fixture
def env(sandbox: Any, tmp_path: Path) -> dict[str, str]:
    return cli_env(tmp_path, sandbox.url)


@pytest.fixture
def client(sandbox: Any) -> TradingClient:
    return TradingClient(sandbox.key_id, sandbox.secret_key, paper=True, url_override=sandbox.url)


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """`tmpfs(name)`: a fresh 64 KiB tmpfs mounted at tmp_path/name, unmounted after the test."""
    mounted: list[Path] = []

    def mount(name: str) -> Path:
        where = tmp_path / name
        where.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=64k,mode=0755", "tmpfs", str(where)], capture_output=True, text=True
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip() or done.returncode}")
        mounted.append(where)
        return where

    try:
        yield mount
    finally:
        for where in reversed(mounted):
            subprocess.run(["umount", "-l", str(where)], capture_output=True)


def remount(where: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(where)], check=True, capture_output=True)


def fill_up(where: Path) -> None:
    """Take every free byte of the filesystem at `where` (unbuffered: nothing left to flush on close)."""
    with open(where / "filler", "wb", buffering=0) as handle, contextlib.suppress(OSError):
        while True:
            handle.write(b"\0" * 4096)


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith(ERROR)]


def one_error(result: subprocess.CompletedProcess[str], *needles: str) -> str:
    """The run's one error line (no traceback), which must contain every needle."""
    assert "Traceback" not in result.stderr, result.stderr
    [line] = error_lines(result.stderr)
    for needle in needles:
        assert needle in line, line
    return line


def init_state(env: dict[str, str], path: Path) -> bytes:
    result = run_cli("reconcile", "--init", "--state", str(path), "--sandbox", env=env)
    assert result.returncode == 0, result.stderr
    return path.read_bytes()


# ----------------------------------------------------------------------- the state file


def test_a_read_only_filesystem_is_exit_2_naming_the_file_and_leaves_it_intact(
    sandbox: Any, env: dict[str, str], tmpfs: Callable[[str], Path]
) -> None:
    disk = tmpfs("ro")
    state = disk / "state.json"
    before = init_state(env, state)
    remount(disk, "ro")
    for args in (["reconcile", "--write"], ["tail", "trade-updates", "--duration", "5"]):
        result = run_cli(*args, "--state", str(state), "--sandbox", "-o", "json", env=env)
        assert result.returncode == 2, (args, result.stderr)
        one_error(result, str(state), "Read-only file system")
        assert result.stdout == "" or all(line["type"] != "trade_update" for line in json_lines(result.stdout))
        assert state.read_bytes() == before


def test_a_full_filesystem_is_exit_2_and_leaves_the_old_file_and_no_temp_file(
    sandbox: Any, env: dict[str, str], tmpfs: Callable[[str], Path]
) -> None:
    disk = tmpfs("full")
    state = disk / "state.json"
    before = init_state(env, state)
    fill_up(disk)
    result = run_cli("reconcile", "--write", "--state", str(state), "--sandbox", env=env)
    assert result.returncode == 2, result.stderr
    one_error(result, f"cannot write state file {state}", "No space left on device", "unchanged")
    assert state.read_bytes() == before
    assert sorted(p.name for p in disk.iterdir()) == ["filler", "state.json", "state.json.lock"]


def test_a_directory_in_the_way_of_the_file_or_its_lock_is_exit_2(
    sandbox: Any, env: dict[str, str], tmp_path: Path
) -> None:
    state = tmp_path / "state.json"
    before = init_state(env, state)
    (tmp_path / "state.json.lock").unlink(missing_ok=True)
    (tmp_path / "state.json.lock").mkdir()
    for args in (["reconcile", "--write"], ["tail", "trade-updates", "--duration", "5"]):
        result = run_cli(*args, "--state", str(state), "--sandbox", env=env)
        assert result.returncode == 2, (args, result.stderr)
        one_error(result, f"cannot lock state file {state}", "state.json.lock")
        assert state.read_bytes() == before
    directory = tmp_path / "a-directory"
    directory.mkdir()
    result = run_cli("reconcile", "--write", "--state", str(directory), "--sandbox", env=env)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert str(directory) in result.stderr


def test_a_running_tail_whose_disk_fills_up_stops_with_exit_2_and_prints_nothing_unsaved(
    sandbox: Any, env: dict[str, str], client: TradingClient, tmpfs: Callable[[str], Path]
) -> None:
    sandbox.set_price("PFE", 5)
    disk = tmpfs("tail")
    state = disk / "state.json"
    init_state(env, state)
    tail = spawn_cli("tail", "trade-updates", "--sandbox", "-o", "json", "--state", str(state), env=env)
    try:
        connected = threading.Event()
        errors: list[str] = []

        def read_stderr() -> None:
            assert tail.stderr is not None
            for line in tail.stderr:
                errors.append(line)
                if "stream connected" in line:
                    connected.set()

        reader = threading.Thread(target=read_stderr, daemon=True)
        reader.start()
        assert connected.wait(30), errors
        fill_up(disk)
        order = client.submit_order(MarketOrderRequest(symbol="PFE", qty=5, side="buy", time_in_force="day"))
        assert tail.stdout is not None
        out = tail.stdout.read()  # to the end: the tail stops by itself (stderr stays with its reader)
        tail.wait(30)
        reader.join(5)
    finally:
        if tail.poll() is None:
            tail.kill()
    assert tail.returncode == 2, errors
    stderr = "".join(errors)
    assert "Traceback" not in stderr, stderr
    [line] = error_lines(stderr)
    assert str(state) in line and "No space left on device" in line
    assert [u for u in json_lines(out) if u.get("order_id") == str(order.id)] == []  # never printed unsaved
    statefile.load(state)  # the last good document, whole


def test_permission_denied_as_another_user_is_exit_2_naming_the_lock(sandbox: Any, env: dict[str, str]) -> None:
    """Root ignores permission bits, so the run drops to `nobody` (setpriv) in a directory only root may write."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv(1) to run the tool as another user")
    as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *CLI]
    probe = subprocess.run([*as_nobody, "--version"], capture_output=True, text=True, timeout=30, cwd="/")
    if probe.returncode != 0:  # e.g. a virtual environment in a directory only root may enter
        pytest.skip(f"the tool cannot run as nobody here: {probe.stderr.strip()[:120]}")
    home = Path(tempfile.mkdtemp(prefix="alpaca-cli-perm-", dir="/tmp"))
    try:
        home.chmod(0o755)
        state = home / "state.json"
        init_state({**env, "ALPACA_CLI_STATE_DIR": str(home / "health")}, state)
        state.chmod(0o644)
        (home / "state.json.lock").unlink(missing_ok=True)
        before = state.read_bytes()
        result = subprocess.run(
            [*as_nobody, "tail", "trade-updates", "--state", str(state), "--duration", "5", "--sandbox"],
            env={**env, "ALPACA_CLI_CONFIG": str(home / "none.toml"), "ALPACA_CLI_STATE_DIR": str(home / "health")},
            capture_output=True,
            text=True,
            timeout=30,
            cwd=home,
        )
        assert result.returncode == 2, result.stderr
        one_error(result, f"cannot lock state file {state}", "Permission denied")
        assert state.read_bytes() == before
    finally:
        shutil.rmtree(home, ignore_errors=True)


# --------------------------------------------------------------- submit: exit 6 and 124


@pytest.mark.parametrize("wait", [False, True], ids=["submit", "submit-wait"])
def test_submit_that_placed_the_order_but_cannot_record_it_exits_6_and_says_what_to_run(
    sandbox: Any, env: dict[str, str], client: TradingClient, tmpfs: Callable[[str], Path], wait: bool
) -> None:
    sandbox.set_price("WMT", 5)
    disk = tmpfs("six")
    state = disk / "state.json"
    before = init_state(env, state)
    remount(disk, "ro")
    extra = ["--wait", "--timeout", "20"] if wait else []
    result = run_cli(
        "submit",
        "WMT",
        "buy",
        "--qty",
        "3",
        "--type",
        "limit",
        "--limit-price",
        "1",  # rests: stays open
        *("--state", str(state), *extra, "--sandbox", "-o", "json"),
        env=env,
    )
    assert result.returncode == 6, result.stderr
    [placed] = [line for line in json_lines(result.stdout) if line["type"] == "order"]
    line = one_error(result, placed["id"], placed["client_order_id"], f"reconcile --write --state {state}")
    assert "is at the broker" in line and "Read-only file system" in line
    assert client.get_order_by_client_id(placed["client_order_id"]).id is not None  # it exists
    assert state.read_bytes() == before
    remount(disk, "rw")
    fixed = run_cli("reconcile", "--write", "--state", str(state), "--sandbox", env=env)
    assert fixed.returncode == 1, fixed.stderr  # drift found (the unrecorded order) and adopted
    adopted = statefile.load(state)
    assert placed["id"] in adopted.open_orders


# --------------------------------------------------------------------------- symlinks


def test_a_symlinked_state_file_is_written_through_the_link_which_stays_a_link(
    sandbox: Any, env: dict[str, str], client: TradingClient, tmp_path: Path
) -> None:
    real_dir = tmp_path / "real"
    real_dir.mkdir()
    target = real_dir / "state.json"
    init_state(env, target)
    link = tmp_path / "state-link.json"
    link.symlink_to(target)
    sandbox.set_price("F", 5)
    order = client.submit_order(LimitOrderRequest(symbol="F", qty=1, side="buy", time_in_force="day", limit_price=1))
    result = run_cli("reconcile", "--write", "--state", str(link), "--sandbox", env=env)
    assert result.returncode == 1, result.stderr  # the new order is drift, adopted
    assert link.is_symlink() and link.resolve() == target
    adopted = statefile.load(target)
    assert str(order.id) in adopted.open_orders
    assert oct(target.stat().st_mode & 0o777) == "0o600"
    # The lock lives with the real file, so a run through the link and one on the target exclude each other.
    assert (real_dir / "state.json.lock").exists() and not (tmp_path / "state-link.json.lock").exists()
    assert sorted(p.name for p in real_dir.iterdir()) == ["state.json", "state.json.lock"]
    tail = run_cli("tail", "trade-updates", "--state", str(link), "--duration", "1", "--sandbox", "-o", "json", env=env)
    assert tail.returncode == 0, tail.stderr
    assert link.is_symlink()


@pytest.mark.parametrize("kind", ["dangling", "loop"])
def test_a_dangling_or_looping_link_is_exit_2_with_the_reason(
    sandbox: Any, env: dict[str, str], tmp_path: Path, kind: str
) -> None:
    link = tmp_path / "state.json"
    if kind == "dangling":
        link.symlink_to(tmp_path / "nowhere" / "state.json")
        reason = "which does not exist"
    else:
        link.symlink_to(tmp_path / "other.json")
        (tmp_path / "other.json").symlink_to(link)
        reason = "loop of symbolic links"
    for args in (["reconcile", "--write"], ["reconcile", "--init"], ["tail", "trade-updates", "--duration", "5"]):
        result = run_cli(*args, "--state", str(link), "--sandbox", env=env)
        assert result.returncode == 2, (args, result.stderr)
        one_error(result, str(link), reason)
    assert link.is_symlink() and not (tmp_path / "nowhere").exists()


# ------------------------------------------------------------------------ health files


def test_an_unwritable_health_file_is_one_warning_on_one_line_never_a_failure(
    sandbox: Any, tmp_path: Path, client: TradingClient
) -> None:
    # The state dir is a regular file, behind a path longer than any terminal is wide.
    deep = tmp_path / ("a-rather-long-directory-name-" * 4)
    deep.mkdir()
    blocker = deep / "not-a-directory"
    blocker.write_text("")
    env = cli_env(tmp_path, sandbox.url, ALPACA_CLI_STATE_DIR=str(blocker))
    sandbox.set_price("KO", 5)
    tail = spawn_cli(
        "tail",
        "trade-updates",
        "--sandbox",
        "-o",
        "json",
        "--events",
        "fill",
        "--count",
        "1",
        "--duration",
        "20",
        env=env,
    )
    try:
        assert tail.stderr is not None
        seen = ""
        while "stream connected" not in seen:
            seen += tail.stderr.readline()
        client.submit_order(MarketOrderRequest(symbol="KO", qty=1, side="buy", time_in_force="day"))
        out, err = tail.communicate(timeout=30)
    finally:
        if tail.poll() is None:
            tail.kill()
    stderr = seen + err
    assert tail.returncode == 0, stderr
    assert any(u["event"] == "fill" for u in json_lines(out) if u["type"] == "trade_update")
    warnings = [line for line in stderr.splitlines() if "health file" in line]
    assert len(warnings) == 1, stderr
    [warning] = warnings
    # One message, one line: the whole sentence, far past 80 columns, unwrapped.
    assert warning.startswith("warning: cannot write the trade-updates health file")
    assert str(blocker) in warning and warning.endswith("will not see this stream")
    assert len(warning) > 160
    bars = run_cli("stream", "bars", "KO", "--count", "1", "--sandbox", "-o", "json", env=env)
    assert bars.returncode == 0, bars.stderr
    assert sum("health file" in line for line in bars.stderr.splitlines()) == 1, bars.stderr


def test_the_atomic_writer_refuses_a_dangling_link_with_errno_enoent(tmp_path: Path) -> None:
    from alpaca_cli.atomic import write_atomic

    link = tmp_path / "x"
    link.symlink_to(tmp_path / "missing")
    with pytest.raises(OSError) as raised:
        write_atomic(link, b"data")
    assert raised.value.errno == errno.ENOENT and "does not exist" in str(raised.value.strerror)
    assert link.is_symlink() and not (tmp_path / "missing").exists()
