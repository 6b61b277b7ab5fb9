"""Alpaca's rate limit in the sandbox: headers, 429 with Retry-After, the budget refilling.

Time is a hand-moved clock injected into the limiter, so the refill is tested
without sleeping.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient

from alpaca_cli.sandbox.ratelimit import RateLimiter
from alpaca_cli.sandbox.server import SandboxThread

T0 = 1_800_000_000.0


class HandClock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def test_bucket_spends_refuses_and_refills() -> None:
    clock = HandClock()
    limiter = RateLimiter(6, clock)  # one request every 10 s
    verdicts = [limiter.take("K") for _ in range(7)]
    assert [v.allowed for v in verdicts] == [True] * 6 + [False]
    assert [v.remaining for v in verdicts] == [5, 4, 3, 2, 1, 0, 0]
    refused = verdicts[-1]
    assert refused.retry_after == 10 and refused.reset == int(T0) + 60
    assert refused.headers()["Retry-After"] == "10" and "Retry-After" not in verdicts[0].headers()
    assert limiter.take("OTHER").remaining == 5  # budgets are per key
    clock.now += 9.9
    assert not limiter.take("K").allowed  # refused requests cost nothing, but time must pass
    clock.now += 0.1
    assert limiter.take("K").allowed
    clock.now += 600
    full = limiter.take("K")
    assert full.remaining == 5 and full.reset == int(clock.now) + 10


def test_a_zero_budget_is_refused() -> None:
    with pytest.raises(ValueError):
        RateLimiter(0)


@pytest.fixture(scope="module")
def clock() -> HandClock:
    return HandClock()


@pytest.fixture(scope="module")
def limited(clock: HandClock) -> Iterator[SandboxThread]:
    # The tests below are about the limit, so it is small; nothing here needs the market open.
    with SandboxThread(port=0, rate_limit=5, rate_clock=clock) as sb:
        yield sb


@pytest.fixture(autouse=True)
def _fresh_budget(clock: HandClock) -> None:
    clock.now += 3600  # every test starts with a full bucket


def get(sb: SandboxThread, path: str, key: str = "SANDBOXKEY") -> tuple[int, dict[str, str], Any]:
    request = urllib.request.Request(
        sb.url + path, headers={"APCA-API-KEY-ID": key, "APCA-API-SECRET-KEY": sb.sandbox.secret_key}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read() or b"null")


def test_every_answer_carries_the_headers_and_the_sixth_is_refused(limited: SandboxThread, clock: HandClock) -> None:
    answers = [get(limited, "/v2/account"), get(limited, "/v2/orders/nope")]
    answers += [get(limited, "/v2/clock") for _ in range(3)]
    assert [status for status, _, _ in answers] == [200, 404, 200, 200, 200]
    assert [h["X-RateLimit-Remaining"] for _, h, _ in answers] == ["4", "3", "2", "1", "0"]
    assert all(h["X-RateLimit-Limit"] == "5" for _, h, _ in answers)
    assert int(answers[-1][1]["X-RateLimit-Reset"]) == int(clock.now) + 60
    refused_before = limited.admin("GET", "/admin/stats")["rate_limited"]
    status, headers, body = get(limited, "/v2/clock")
    assert status == 429 and body == {"code": 42910000, "message": "rate limit exceeded"}
    assert headers["Retry-After"] == "12" and headers["X-RateLimit-Remaining"] == "0"
    assert limited.admin("GET", "/admin/stats")["rate_limited"] == refused_before + 1  # what benchmarks count
    clock.now += 12
    assert get(limited, "/v2/clock")[0] == 200


def test_admin_routes_and_refused_keys_spend_nothing(limited: SandboxThread) -> None:
    for _ in range(10):
        stats = limited.admin("GET", "/admin/stats")
    assert "requests" in stats
    assert get(limited, "/v2/account", key="WRONG")[0] == 401
    assert get(limited, "/v2/account")[1]["X-RateLimit-Remaining"] == "4"


def test_the_sdk_gives_up_after_its_retries(limited: SandboxThread) -> None:
    client = TradingClient("SANDBOXKEY", "SANDBOXSECRET", paper=True, url_override=limited.url)
    client._retry_wait = 0  # the clock is frozen: waiting would not help, only slow the test
    for _ in range(5):
        client.get_clock()
    with pytest.raises(APIError) as info:
        client.get_clock()
    assert info.value.status_code == 429 and info.value.code == 42910000


def test_admin_rate_limit_switches_it(limited: SandboxThread) -> None:
    assert limited.admin("GET", "/admin/rate-limit") == {"rate_limit": 5}
    limited.admin("POST", "/admin/rate-limit", {"rate_limit": 0})
    try:
        for _ in range(8):
            status, headers, _ = get(limited, "/v2/clock")
            assert status == 200 and "X-RateLimit-Limit" not in headers
    finally:
        limited.admin("POST", "/admin/rate-limit", {"rate_limit": 5})
    assert get(limited, "/v2/clock")[1]["X-RateLimit-Limit"] == "5"


def test_the_default_is_alpacas_200_a_minute() -> None:
    with SandboxThread(port=0) as sb:
        assert get(sb, "/v2/clock")[1]["X-RateLimit-Limit"] == "200"


def test_the_new_routes_share_the_budget(limited: SandboxThread) -> None:
    """Account, watchlist, /v3 and market-data routes are counted like orders and the account."""
    paths = [
        "/v2/account/activities",
        "/v2/watchlists",
        "/v3/clock",
        "/v2/stocks/AAPL/quotes/latest",
        "/v2/stocks/snapshots?symbols=AAPL",
    ]
    answers = [get(limited, path) for path in paths]
    assert [h["X-RateLimit-Remaining"] for _, h, _ in answers] == ["4", "3", "2", "1", "0"]
    assert get(limited, "/v3/calendar/NYSE")[0] == 429
