"""Issue 10's acceptance tests: every broker-facing command against a broker that misbehaves.

Each case runs the real entry point as a subprocess against its own
`MisbehavingBroker` (tests/misbehaving.py) and checks the contract
(docs/conventions.md): a misbehaving broker is exit 4 -- never 1, never a
traceback -- with one line on stderr, no HTML, no secret, within a bounded
time (the total deadline of one broker call is set to 4 s); a 429 with
`Retry-After` is waited out; `submit` never sends an order twice unless a
lookup proved the first one absent.

The ~80 runs would take minutes one after another, mostly spent waiting on
deadlines, so the module runs them all at once (`runs`, a few at a time,
slowest first) and each parametrized test only judges its own run: a failure
names its case, and what the tool did (exit code, stderr, seconds from the
broker's first request to the exit).

The server's behaviours are checked directly first (`test_server_*`, with
`requests` and raw sockets), so a failing case is the tool's fault, not the
fake broker's; the `ok` cases show that its valid answers satisfy every command.

What counts as "one line": stderr holds exactly one line besides `submit`'s
one-line `[PAPER]` banner. A 404 everywhere must name the server's address and
hint that the URL (for REST commands: the base URL) may be wrong.
"""

from __future__ import annotations

import re
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
import requests

from alpaca_cli.core import State
from tests.helpers import CLI, cli_env
from tests.misbehaving import ACCOUNT_ID, HTML_502, MisbehavingBroker, Request

pytestmark = pytest.mark.timeout(150)

DEADLINE = 4.0  # ALPACA_CLI_DEADLINE: the total deadline of one broker call
# Times are taken from the broker's first request to the exit: start-up (imports) on a loaded
# machine is not the tool's dealing with the broker, and must not fail a case.
BOUND = 15.0  # any fault: the command has given up well before this
SLOW_BOUND = 4 * DEADLINE  # never / trickle: at most this
KILL_AFTER = 25.0  # wall time: a run still going then is killed and reported as such
WORKERS = 8  # concurrent runs: enough to overlap the waits, few enough not to starve two cores
KEY_ID = "PKMISBEHAVE000000001"
SECRET = "fake-secret-7Qx2mN9pLw4vTz8r"
LIMITED, RETRY_AFTER = 2, 1  # rate_limited: 429 with Retry-After: 1 for the first 2 requests

COMMANDS: dict[str, tuple[str, ...]] = {
    "status": ("status",),
    "status_check": ("status", "--check"),
    "reconcile": ("reconcile", "--state", "{state}"),
    "submit": ("submit", "AAPL", "buy", "--qty", "1", "--yes"),
    # The streaming ones run until the broker's fault ends them (exit 4); a case that expects
    # them to work is stopped with SIGTERM once they say they are connected (exit 0).
    "tail": ("tail", "trade-updates"),
    "stream_bars": ("stream", "bars", "AAPL"),
    "bars": ("bars", "AAPL", "--start", "2026-11-27"),
    "quote": ("quote", "AAPL"),
}
FAULTS = (
    "html502",
    "truncated_json",
    "short_body",
    "missing_fields",
    "wrong_types",
    "nulls",
    "never",
    "trickle",
    "not_found",
)
SLOW = frozenset({"never", "trickle"})
STREAMING = {"tail": "trade-updates", "stream_bars": "market-data"}  # command -> the stream it opens


@dataclass(frozen=True)
class Case:
    """One command against one broker behaviour (`routes`: per-route exceptions to it)."""

    command: str
    behaviour: str
    expect: int = 4
    posts: int | None = None  # submit: exactly this many POSTs
    routes: tuple[tuple[str, str], ...] = ()
    order_exists: bool = False
    resend_ok: bool = True
    label: str = ""

    @property
    def name(self) -> str:
        mixed = "".join(f"+{route}={behaviour}" for route, behaviour in self.routes)
        return f"{self.command}-{self.label or self.behaviour}{mixed}"

    @property
    def slow(self) -> bool:
        return self.behaviour in SLOW or any(b in SLOW for _, b in self.routes)


CASES = [
    *(Case(command, fault) for fault in FAULTS for command in COMMANDS),
    *(Case(command, "rate_limited", expect=0) for command in COMMANDS),
    *(Case(command, "ok", expect=0) for command in COMMANDS),
    # Mixed: most of the broker fine, one route broken.
    Case("status", "ok", routes=(("orders", "wrong_types"),)),
    Case("status_check", "ok", routes=(("account", "nulls"),)),
    Case("reconcile", "ok", routes=(("positions", "missing_fields"),)),
    Case("reconcile", "ok", routes=(("orders", "never"),)),
    Case("tail", "ok", routes=(("orders", "truncated_json"),)),
    Case("stream_bars", "ok", routes=(("data_stream", "html502"),)),
    Case("submit", "ok", routes=(("submit", "nulls"), ("order_by_client_id", "nulls"))),
    # A spoiled answer to the POST, but the lookup by client id finds the order: recovered, sent once.
    Case("submit", "ok", expect=0, posts=1, routes=(("submit", "wrong_types"),)),
    # The lost answer: POST 504, then the lookup by client id decides.
    Case("submit", "post_504_then_404", expect=0, posts=1, order_exists=True, label="post504-order-exists"),
    Case("submit", "post_504_then_404", expect=0, posts=2, label="post504-absent-resend-ok"),
    Case("submit", "post_504_then_404", resend_ok=False, label="post504-absent-always"),
]


@dataclass(frozen=True)
class Run:
    """What one case did: exit code (None: killed at KILL_AFTER), output, time, and what the broker saw."""

    case: Case
    returncode: int | None
    stdout: str
    stderr: str
    seconds: float  # from the broker's first request (or the start, when there was none) to the exit
    requests: list[Request]
    url: str
    setup: str | None = None  # why the case could not be set up
    leaked: tuple[str, ...] = ()  # files under the run's home that hold the secret

    def __str__(self) -> str:
        code = f"killed after {KILL_AFTER:g}s" if self.returncode is None else f"exit {self.returncode}"
        first = self.stderr.splitlines()[0][:200] if self.stderr.strip() else ""
        return f"{code} in {self.seconds:.1f}s, {len(self.stderr.splitlines())} stderr line(s), first: {first!r}"

    def routed(self, route: str) -> list[Request]:
        return [r for r in self.requests if r.route == route]


# ------------------------------------------------------------------------- the server itself


@pytest.fixture
def broker() -> Iterator[MisbehavingBroker]:
    with MisbehavingBroker() as server:
        yield server


def _raw(broker: MisbehavingBroker, path: str, timeout: float = 5.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", broker.port), timeout=timeout)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    return sock


def _read_all(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def test_server_trickle_sends_one_byte_a_second(broker: MisbehavingBroker) -> None:
    broker.behave("trickle")
    with _raw(broker, "/v2/clock") as sock:
        started, received = time.monotonic(), b""
        while time.monotonic() - started < 3.2:
            received += sock.recv(1)
    assert b"HTTP/1.1 200 OK".startswith(received) and 3 <= len(received) <= 5


def test_server_short_body_closes_before_content_length(broker: MisbehavingBroker) -> None:
    broker.behave("short_body")
    with _raw(broker, "/v2/account") as sock:
        head, _, body = _read_all(sock).partition(b"\r\n\r\n")
    length = int(re.search(rb"Content-Length: (\d+)", head).group(1))  # type: ignore[union-attr]
    assert 0 < len(body) < length
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        requests.get(f"{broker.url}/v2/account", timeout=5)


@pytest.mark.parametrize("route_path", ["/v2/account", "/v2/orders", "/v2/stocks/bars?symbols=AAPL"])
def test_server_truncated_json_does_not_parse(broker: MisbehavingBroker, route_path: str) -> None:
    broker.behave("truncated_json")
    answer = requests.get(broker.url + route_path, timeout=5)
    assert answer.status_code == 200 and answer.headers["Content-Type"] == "application/json"
    with pytest.raises(ValueError):
        answer.json()


def test_server_field_faults_spoil_the_required_fields(broker: MisbehavingBroker) -> None:
    def get(behaviour: str, path: str) -> Any:
        broker.behave(behaviour)
        return requests.get(broker.url + path, timeout=5).json()

    assert "id" in get("ok", "/v2/account") and "id" not in get("missing_fields", "/v2/account")
    assert "timestamp" not in get("missing_fields", "/v2/clock")
    assert all("id" not in order for order in get("missing_fields", "/v2/orders"))
    assert get("nulls", "/v2/account")["id"] is None and get("nulls", "/v2/orders")[0]["id"] is None
    assert get("wrong_types", "/v2/account")["id"] == 12345
    assert isinstance(get("wrong_types", "/v2/clock"), list)
    assert get("wrong_types", "/v2/orders")[0]["qty"] == "abc"
    assert get("wrong_types", "/v2/positions")[0]["symbol"] == 7


def test_server_rate_limit_refuses_the_first_requests(broker: MisbehavingBroker) -> None:
    broker.behave("rate_limited", limited=2, retry_after=1)
    answers = [requests.get(f"{broker.url}/v2/{path}", timeout=5) for path in ("account", "clock", "clock", "account")]
    assert [a.status_code for a in answers] == [429, 429, 200, 200]
    assert answers[0].headers["Retry-After"] == "1" and answers[0].headers["X-RateLimit-Remaining"] == "0"
    assert int(answers[0].headers["X-RateLimit-Reset"]) - time.time() <= 2
    assert int(answers[2].headers["X-RateLimit-Remaining"]) > 100 and "X-RateLimit-Limit" in answers[2].headers
    assert [(r.path, r.status) for r in broker.log()] == [
        ("/v2/account", 429),
        ("/v2/clock", 429),
        ("/v2/clock", 200),
        ("/v2/account", 200),
    ]


def test_server_never_holds_until_it_closes(broker: MisbehavingBroker) -> None:
    broker.behave("never")
    with _raw(broker, "/v2/account", timeout=1.0) as sock:
        with pytest.raises(TimeoutError):
            sock.recv(1)
        assert broker.log()[0].status is None
        sock.settimeout(5.0)
        started = time.monotonic()
        broker.close()
        assert sock.recv(1) == b"" and time.monotonic() - started < 3


def test_server_html_and_404_on_every_path_even_stream_upgrades(broker: MisbehavingBroker) -> None:
    broker.behave("html502")
    answer = requests.get(f"{broker.url}/stream", headers={"Upgrade": "websocket", "Connection": "Upgrade"}, timeout=5)
    assert answer.status_code == 502 and answer.text == HTML_502 and answer.text.count("\n") > 3
    broker.behave("not_found")
    for path in ("/v2/account", "/v2/iex", "/v2/stocks/bars"):
        answer = requests.get(broker.url + path, timeout=5)
        assert (answer.status_code, answer.text) == (404, "404 page not found")


@pytest.mark.parametrize("order_exists", [False, True])
def test_server_lost_post_then_lookup(broker: MisbehavingBroker, order_exists: bool) -> None:
    broker.behave("post_504_then_404", order_exists=order_exists)
    order = {"symbol": "AAPL", "qty": "1", "side": "buy", "type": "market", "time_in_force": "day"}
    lookup = f"{broker.url}/v2/orders:by_client_order_id"
    body = {**order, "client_order_id": "acli-lost-1"}
    assert requests.post(f"{broker.url}/v2/orders", json=body, timeout=5).status_code == 504
    found = requests.get(lookup, params={"client_order_id": "acli-lost-1"}, timeout=5)
    if order_exists:
        assert found.status_code == 200 and found.json()["client_order_id"] == "acli-lost-1"
        return
    assert found.status_code == 404
    placed = requests.post(f"{broker.url}/v2/orders", json=body, timeout=5)
    assert placed.status_code == 200 and placed.json()["client_order_id"] == "acli-lost-1"
    assert requests.get(lookup, params={"client_order_id": "acli-lost-1"}, timeout=5).json() == placed.json()
    assert broker.count("submit") == 2


# ------------------------------------------------------------------------- running


def _env(home: Path, broker: MisbehavingBroker) -> dict[str, str]:
    return cli_env(
        home,
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / "config"),
        XDG_STATE_HOME=str(home / "xdg-state"),
        XDG_CACHE_HOME=str(home / "cache"),
        XDG_DATA_HOME=str(home / "data"),
        APCA_API_KEY_ID=KEY_ID,
        APCA_API_SECRET_KEY=SECRET,
        ALPACA_CLI_DEADLINE=f"{DEADLINE:g}",
        **broker.env(),
    )


def _execute(
    args: list[str], env: dict[str, str], stop_on: str | None = None
) -> tuple[int | None, str, str, float, float]:
    """Run the CLI; its exit code (None: killed), output, and when it started and ended (monotonic).
    With `stop_on`, SIGTERM it once a line of its stderr says that (a streaming command that works)."""
    started = time.monotonic()
    out: list[str] = []
    err: list[str] = []
    with subprocess.Popen(
        [*CLI, *args], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:

        def read_stderr() -> None:
            for line in process.stderr:  # type: ignore[union-attr]
                err.append(line)
                if stop_on is not None and stop_on in line and process.poll() is None:
                    process.terminate()

        readers = [
            threading.Thread(target=lambda: out.extend(process.stdout), daemon=True),  # type: ignore[arg-type]
            threading.Thread(target=read_stderr, daemon=True),
        ]
        for reader in readers:
            reader.start()
        try:
            code: int | None = process.wait(timeout=KILL_AFTER)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            code = None
        for reader in readers:
            reader.join(10)
    return code, "".join(out), "".join(err), started, time.monotonic()


def _run_case(case: Case, home: Path) -> Run:
    """One case against a broker of its own, `home` holding its config, state and health files."""
    state = home / "state.json"
    with MisbehavingBroker() as broker:
        env = _env(home, broker)
        setup = None
        if case.command == "reconcile":
            if case.expect == 0:  # in sync: the state file made from this (well-behaved) broker
                code, _, stderr, _, _ = _execute(["reconcile", "--init", "--state", str(state)], env)
                setup = None if code == 0 else f"reconcile --init against the well-behaved broker: exit {code} {stderr}"
            else:
                state.write_bytes(State.empty(ACCOUNT_ID).model_dump_json().encode())
        broker.behave(
            case.behaviour,
            limited=LIMITED,
            retry_after=RETRY_AFTER,
            order_exists=case.order_exists,
            resend_ok=case.resend_ok,
            **dict(case.routes),
        )
        before = broker.count()
        args = [arg.replace("{state}", str(state)) for arg in COMMANDS[case.command]]
        working = case.command in STREAMING and case.expect == 0
        stop_on = f"{STREAMING[case.command]} stream connected" if working else None
        code, stdout, stderr, started, ended = _execute(args, env, stop_on)
        seen = broker.log()[before:]
        seconds = ended - (seen[0].at if seen else started)
    leaked = tuple(str(p) for p in home.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes())
    return Run(case, code, stdout, stderr, seconds, seen, broker.url, setup, leaked)


@pytest.fixture(scope="module")
def runs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    """Every selected case, run concurrently (slowest first), keyed by case name."""
    calls = [getattr(item, "callspec", None) for item in request.session.items]
    selected = {call.params["case"] for call in calls if call is not None and "case" in call.params}
    ordered = sorted(selected, key=lambda case: (not case.slow, case.command not in STREAMING, case.name))
    homes = [tmp_path_factory.mktemp(case.name.replace("=", "_").replace("+", "_")) for case in ordered]
    with ThreadPoolExecutor(WORKERS) as pool:
        return {run.case.name: run for run in pool.map(_run_case, ordered, homes)}


# ------------------------------------------------------------------------- judging

TAG = re.compile(r"</?[a-zA-Z][^>]*>")
BANNER = re.compile(r"^\[(PAPER|SANDBOX)\]$")  # submit's one-line environment banner: not an error line


def _error_lines(run: Run) -> list[str]:
    return [line for line in run.stderr.splitlines() if not BANNER.match(line.strip())]


def _check_posts(run: Run) -> None:
    """At most one order: a POST is resent only after a 429, or after a lookup answered 404."""
    posts = [i for i, r in enumerate(run.requests) if r.route == "submit"]
    assert posts, f"{run}: no POST /v2/orders"
    ids = {run.requests[i].json().get("client_order_id") for i in posts}
    assert len(ids) == 1 and None not in ids, f"{run}: POSTs with client order ids {ids}"
    for previous, following in pairwise(posts):
        between = run.requests[previous + 1 : following]
        absent = any(r.route == "order_by_client_id" and r.status == 404 for r in between)
        assert run.requests[previous].status == 429 or absent, (
            f"{run}: POST #{posts.index(following) + 1} sent although no lookup proved the order absent "
            f"({[(r.method, r.route, r.status) for r in run.requests]})"
        )


def _may_have_created(run: Run) -> bool:
    """The last POST got no answer that rules an order out, and no lookup after it answered 404."""
    last = max(i for i, r in enumerate(run.requests) if r.route == "submit")
    after = run.requests[last + 1 :]
    ruled_out = run.requests[last].status in (404, 429) or any(
        r.route == "order_by_client_id" and r.status == 404 for r in after
    )
    return not ruled_out


def _check_rate_limits(run: Run) -> None:
    """Each 429 waited out (Retry-After: 1) and, for one-shot commands, no more requests than needed."""
    by_path: dict[tuple[str, str], list[Request]] = {}
    for request in run.requests:
        if request.route not in ("trade_stream", "data_stream"):
            by_path.setdefault((request.method, request.path), []).append(request)
    for (method, path), seen in by_path.items():
        for refused, following in pairwise(seen):
            if refused.status == 429:
                waited = following.at - refused.at
                assert waited >= RETRY_AFTER - 0.1, f"{run}: {method} {path} again after {waited:.2f}s, not waiting"
    if run.case.command not in STREAMING:
        sent, needed = sum(map(len, by_path.values())), len(by_path) + LIMITED
        assert sent <= needed, f"{run}: {sent} requests, {needed} needed ({sorted(by_path)})"


def _judge(run: Run) -> None:
    case = run.case
    assert run.setup is None, run.setup
    assert SECRET not in run.stdout + run.stderr, f"{run}: the secret was printed"
    assert not run.leaked, f"{run}: the secret was written to {run.leaked}"
    assert "Traceback" not in run.stderr, f"{run}: a traceback"
    assert run.returncode is not None, str(run)
    if case.command == "submit":
        _check_posts(run)
        if case.posts is not None:
            assert len(run.routed("submit")) == case.posts, f"{run}: {len(run.routed('submit'))} POSTs"
    if case.expect == 0:
        assert run.returncode == 0, str(run)
        assert run.seconds < BOUND, str(run)
        if case.behaviour == "rate_limited":
            _check_rate_limits(run)
        if case.behaviour == "ok" and case.command in STREAMING:
            assert f"{STREAMING[case.command]} stream connected" in run.stderr, f"{run}: the stream never connected"
        return
    lines = _error_lines(run)
    assert run.returncode == 4, str(run)
    assert len(lines) == 1, f"{run}: stderr is {len(lines)} lines: {lines[:6]}"
    (line,) = lines
    assert not TAG.search(line), f"{run}: HTML in the error line"
    assert run.seconds < (SLOW_BOUND if case.slow else BOUND), f"{run}: too slow"
    if case.behaviour == "not_found":
        address = run.url.removeprefix("http://")
        assert address in line, f"{run}: a 404 everywhere should name the URL ({address})"
        hint = r"url" if case.command in STREAMING else r"(base|data)[ _]url"  # data commands: APCA_API_DATA_URL
        assert re.search(hint, line.replace(address, ""), re.IGNORECASE), f"{run}: no hint that the URL may be wrong"
    if case.command == "submit" and _may_have_created(run):
        (client_order_id,) = {r.json()["client_order_id"] for r in run.routed("submit")}
        assert client_order_id in line, f"{run}: the order may exist, the line must name {client_order_id}"


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_command_against_misbehaving_broker(case: Case, runs: dict[str, Run]) -> None:
    _judge(runs[case.name])
