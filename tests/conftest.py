"""Shared fixtures: the sandbox broker every end-to-end test talks to.

`sandbox` (module scope) is a started `SandboxThread` on a free loopback port
with short intervals (tick 0.02 s, bars every 0.5 s), always open (the suite
runs at any hour) and rate-limited like Alpaca (200 requests a minute). Use it like this:

    def test_something(sandbox):
        client = TradingClient(sandbox.key_id, sandbox.secret_key, paper=True,
                               url_override=sandbox.url)
        sandbox.admin("POST", "/admin/price", {"symbol": "AAPL", "price": 100})
        sandbox.call(lambda: sandbox.broker.step())   # on the sandbox's loop
        assert sandbox.counts["POST /v2/orders"] == 1

Faults are switched off again after every test (`_reset_sandbox_faults`), so
a test that injects 503s cannot poison the next one. Broker state (orders,
positions, cash) is shared by the tests of a module: assert on what your test
created (its own client_order_id, symbol), not on totals, or start the test
with `sandbox.reset()` for an empty account.

The suite runs in parallel (pytest-xdist, `-n 4 --dist loadfile`: a module's
tests, which share its sandbox, stay on one worker; four workers on two cores,
because the end-to-end tests spend about half their time waiting on the CLI
processes they start). Nothing is shared between
workers: each sandbox listens on a free port, every CLI run gets its own
config and state dirs (`helpers.cli_env`), and `_own_dirs` points each
worker's platform dirs (XDG) at a directory of its own, so a test that reaches
the default config or state dir touches neither the user's nor another
worker's.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import settings

from alpaca_cli.sandbox.server import SandboxThread

# CI draws the same examples every run (a red build can be reproduced, a green one is not luck);
# locally every run draws new ones, to keep exploring.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
if os.environ.get("CI") == "true":
    settings.load_profile("ci")


class SandboxHandle(SandboxThread):
    """`SandboxThread` plus shortcuts tests keep needing."""

    @property
    def key_id(self) -> str:
        return self.sandbox.key_id

    @property
    def secret_key(self) -> str:
        return self.sandbox.secret_key

    @property
    def broker(self) -> Any:
        return self.sandbox.broker

    @property
    def faults(self) -> Any:
        return self.sandbox.faults

    @property
    def counts(self) -> Any:
        """Requests served so far, by "METHOD /path/{template}"."""
        return self.sandbox.request_counts

    @property
    def ws_url(self) -> str:
        return "ws" + self.url.removeprefix("http")

    def set_faults(self, **fields: Any) -> dict[str, Any]:
        return self.admin("POST", "/admin/faults", fields)

    def set_price(self, symbol: str, price: float | str) -> None:
        self.admin("POST", "/admin/price", {"symbol": symbol, "price": price})

    def step(self, n: int = 1) -> None:
        self.admin("POST", "/admin/step", {"n": n})

    def reset(self, cash: float | str = "100000") -> dict[str, Any]:
        """A fresh account (no orders or positions) and no faults; streams stay connected."""
        return self.admin("POST", "/admin/reset", {"cash": cash})


@pytest.fixture(scope="session", autouse=True)
def _own_dirs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """This worker's own XDG config, state, cache and data dirs (see the module docstring)."""
    home = tmp_path_factory.mktemp("xdg")
    patch = pytest.MonkeyPatch()
    for name in ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME"):
        path = home / name.lower()
        path.mkdir()
        patch.setenv(name, str(path))
    yield
    patch.undo()


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxHandle]:
    """A running sandbox broker for this test module (see the module docstring)."""
    # The suite runs at any hour: always open keeps fills and bars coming on nights and
    # weekends. The rate limit stays on (200 a minute), as on the real broker.
    handle = SandboxHandle(port=0, seed=7, tick_interval=0.02, bar_interval=0.5, always_open=True)
    with handle:
        yield handle


@pytest.fixture(autouse=True)
def _reset_sandbox_faults(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each test that used the sandbox, switch every fault off and resume halted symbols."""
    yield
    if "sandbox" in request.fixturenames:
        handle: SandboxHandle = request.getfixturevalue("sandbox")

        def reset() -> None:
            handle.sandbox.faults.reset()
            handle.sandbox.broker.halted.clear()

        handle.call(reset)
