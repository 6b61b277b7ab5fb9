"""The bridge's transport policy: the request budget, retry delays, aborting a call, and the
translation of failures into one line each. Pure parts with injected clocks; the abort
over a real loopback socket."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import pytest
import requests
from alpaca.common.exceptions import APIError

from alpaca_cli.bridge import transport
from alpaca_cli.bridge.mapping import MalformedAnswer
from alpaca_cli.bridge.translate import summarize, translate
from alpaca_cli.errors import AuthError, BrokerRejected, RouteNotFound, UnreachableError


class FakeClock:
    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def _call(deadline: float = 10.0, clock: FakeClock | None = None, *, lookup: bool = False) -> transport.Call:
    call = transport.Call("get account", deadline, lookup=lookup, clock=clock or FakeClock())
    call.method, call.url = "GET", "http://127.0.0.1:9/v2/account"
    return call


def _api_error(status: int, body: str, headers: dict[str, str] | None = None) -> APIError:
    response = requests.Response()
    response.status_code = status
    response._content = body.encode()
    response.headers.update(headers or {})
    return APIError(body, requests.HTTPError(response=response))


# ------------------------------------------------------------------------- the budget


def test_once_the_announced_remainder_is_spent_requests_are_paced_until_the_reset() -> None:
    clock = FakeClock()
    budget = transport.RequestBudget(now=clock)
    reset = {"X-RateLimit-Limit": "200", "X-RateLimit-Reset": str(clock.now + 30)}
    budget.observe(200, {**reset, "X-RateLimit-Remaining": "2"})
    assert budget.wait_time() == 0
    budget.take(_call(clock=clock))
    budget.take(_call(clock=clock))  # two sent, no answer yet: the remainder is spent
    assert budget.wait_time() == pytest.approx(30 / 200)  # one request per 1/200 of what is left
    clock.now += 30 / 200
    budget.take(_call(clock=clock))  # the paced one
    assert budget.wait_time() > 0
    clock.now = float(reset["X-RateLimit-Reset"])
    assert budget.wait_time() == 0  # the window started over
    assert budget.limit == 200


def test_without_a_limit_a_spent_budget_waits_for_the_reset() -> None:
    clock = FakeClock()
    budget = transport.RequestBudget(now=clock)
    budget.observe(200, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(clock.now + 12)})
    assert budget.wait_time() == pytest.approx(12)


def test_answers_give_back_what_was_counted_in_flight() -> None:
    clock = FakeClock()
    budget = transport.RequestBudget(now=clock)
    headers = {"X-RateLimit-Remaining": "1", "X-RateLimit-Reset": str(clock.now + 60)}
    budget.observe(200, headers)
    budget.take(_call(clock=clock))
    assert budget.wait_time() == pytest.approx(60)  # no limit announced: nothing to pace by
    budget.observe(200, {**headers, "X-RateLimit-Remaining": "5"})
    assert budget.wait_time() == 0


def test_requests_that_got_no_answer_stop_counting() -> None:
    """An outage must not leave phantom requests in flight that pace the rest of a long tail."""
    clock = FakeClock()
    budget = transport.RequestBudget(now=clock)
    budget.observe(
        200, {"X-RateLimit-Limit": "200", "X-RateLimit-Remaining": "3", "X-RateLimit-Reset": str(clock.now + 60)}
    )
    for _ in range(3):
        budget.take(_call(clock=clock))
        budget.unanswered()
    assert budget.wait_time() == 0


def test_a_429_holds_every_request_back_as_long_as_it_says() -> None:
    clock = FakeClock()
    budget = transport.RequestBudget(now=clock)
    budget.observe(429, {"Retry-After": "7"})
    assert budget.wait_time() == pytest.approx(7)
    clock.now += 7
    assert budget.wait_time() == 0


def test_a_budget_wait_longer_than_the_deadline_gives_up_at_once() -> None:
    clock = FakeClock()
    budget = transport.RequestBudget(now=clock)
    budget.observe(429, {"Retry-After": "30"})
    started = time.monotonic()
    with pytest.raises(transport.RateLimited) as raised:
        budget.take(transport.Call("x", 5.0))
    assert time.monotonic() - started < 1
    line = translate(raised.value, _call(5.0), "X").line()
    assert "rate limit" in line and "30 s" in line


def test_a_broker_that_announces_nothing_is_not_throttled() -> None:
    budget = transport.RequestBudget()
    for _ in range(1000):
        budget.take(_call())
    assert budget.wait_time() == 0


# ------------------------------------------------------------------------ retry delays


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "3"}, 3.0),
        ({"Retry-After": "Wed, 21 Oct 2015 07:28:05 GMT"}, 5.0),  # an HTTP date, 5 s after "now"
        ({"X-RateLimit-Reset": "1445412485"}, 5.0),
        ({}, 1.0),
    ],
)
def test_a_429_waits_as_the_broker_says(headers: dict[str, str], expected: float) -> None:
    now = 1445412480.0  # 2015-10-21T07:28:00Z
    assert transport.wait_after_429(headers, now=lambda: now) == pytest.approx(expected)


def test_what_is_retried_and_what_is_final() -> None:
    assert transport.retry_delay(_api_error(503, "{}"), 0) == transport.RETRY_BASE
    assert transport.retry_delay(_api_error(503, "{}"), transport.TRANSIENT_RETRIES) is None
    assert transport.retry_delay(_api_error(429, "{}", {"Retry-After": "2"}), 0) == 2
    assert transport.retry_delay(_api_error(429, "{}"), transport.RATE_LIMIT_RETRIES) is None
    assert transport.retry_delay(_api_error(422, '{"code":1,"message":"no"}'), 0) is None
    assert transport.retry_delay(requests.exceptions.ConnectionError(), 1) == transport.RETRY_BASE * 2
    assert transport.retry_delay(requests.exceptions.ChunkedEncodingError(), 0) is not None
    assert transport.retry_delay(MalformedAnswer("x"), 0) is None
    assert transport.retry_delay(requests.exceptions.JSONDecodeError("x", "", 0), 0) is None


def test_a_call_retries_within_its_deadline_and_never_when_told_not_to() -> None:
    attempts: list[int] = []

    def flaky() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise requests.exceptions.ConnectionError("dropped")
        return "ok"

    assert transport.Call("read", 10).run(flaky) == "ok" and len(attempts) == 3
    attempts.clear()
    with pytest.raises(requests.exceptions.ConnectionError):
        transport.Call("post", 10).run(flaky, retry=False)
    assert len(attempts) == 1


# ---------------------------------------------------------------- aborting a blocked read


@pytest.mark.timeout(20)
def test_abort_wakes_a_thread_blocked_on_a_trickling_broker() -> None:
    """Per-read timeouts never fire on a broker sending a byte a second; aborting the call does."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    stop = threading.Event()

    def trickle() -> None:
        conn, _ = server.accept()
        conn.recv(65536)
        for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 100:
            if stop.wait(0.2):
                break
            try:
                conn.send(bytes([byte]))
            except OSError:
                break
        conn.close()

    threading.Thread(target=trickle, daemon=True).start()
    session = requests.Session()
    session.mount("http://", transport.BrokerAdapter(transport.RequestBudget()))
    call = transport.Call("get account", 30)
    outcome: list[Any] = []

    def fetch() -> None:
        try:
            outcome.append(call.run(lambda: session.get(f"http://127.0.0.1:{port}/v2/account")))
        except BaseException as error:
            outcome.append(error)

    worker = threading.Thread(target=fetch)
    worker.start()
    time.sleep(1.0)  # the answer is trickling in
    started = time.monotonic()
    call.abort()
    worker.join(5)
    stop.set()
    server.close()
    assert not worker.is_alive() and time.monotonic() - started < 2
    assert isinstance(outcome[0], transport.DeadlineExceeded)


# ------------------------------------------------------------------------- translation


def test_html_pages_are_summarized_by_their_title() -> None:
    page = "<!DOCTYPE html>\n<html>\n<head><title>502 Bad\n Gateway</title></head><body>nginx</body></html>"
    assert summarize(page) == "an HTML page (502 Bad Gateway)"
    assert summarize("") == "an empty body"
    assert "\n" not in summarize("line one\nline two")


@pytest.mark.parametrize(
    ("status", "body", "kind", "exit_code"),
    [
        (502, "<html><title>502 Bad Gateway</title></html>", UnreachableError, 4),
        (404, "404 page not found", RouteNotFound, 4),
        (404, '{"code":40410000,"message":"order not found"}', RouteNotFound, 4),  # not a lookup: wrong URL
        (404, '{"code":40410000,"message":"endpoint not found"}', RouteNotFound, 4),
        (422, '{"code":40010001,"message":"client_order_id must be unique"}', BrokerRejected, 1),
        (422, "<html>Unprocessable</html>", UnreachableError, 4),  # not Alpaca's answer: not a refusal
        (401, '{"message":"unauthorized."}', AuthError, 3),
        (403, '{"code":40310000,"message":"insufficient buying power"}', BrokerRejected, 1),
        (429, '{"code":42910000,"message":"rate limit exceeded"}', UnreachableError, 4),
    ],
)
def test_every_answer_becomes_one_line_with_the_contracts_exit_code(
    status: int, body: str, kind: type, exit_code: int
) -> None:
    error = translate(_api_error(status, body), _call(), "APCA_API_BASE_URL")
    assert type(error) is kind and int(error.exit_code) == exit_code
    assert "\n" not in error.line() and "<" not in error.line()


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        ('{"code":40410000,"message":"order not found"}', BrokerRejected),
        ('{"code":40410000,"message":"endpoint not found"}', RouteNotFound),
        ("Not Found", RouteNotFound),
    ],
)
def test_only_a_lookup_in_alpacas_words_means_no_such_order(body: str, kind: type) -> None:
    assert type(translate(_api_error(404, body), _call(lookup=True), "X")) is kind


def test_a_route_404_names_the_url_and_the_setting() -> None:
    line = translate(_api_error(404, "404 page not found"), _call(), "APCA_API_BASE_URL").line()
    assert "http://127.0.0.1:9/v2/account" in line and "APCA_API_BASE_URL" in line


def test_malformed_and_silent_answers_name_the_route() -> None:
    call = _call()
    malformed = translate(MalformedAnswer("account field 'id' is missing"), call, "X")
    assert "GET /v2/account" in malformed.line() and "'id'" in malformed.line()
    truncated = translate(requests.exceptions.JSONDecodeError("x", "{", 1), call, "X")
    assert "not valid JSON" in truncated.line()
    silent = translate(transport.DeadlineExceeded(), call, "X")
    assert "10 s" in silent.line() and isinstance(silent, UnreachableError)


def test_an_unreachable_broker_is_named_and_a_missing_sandbox_says_how_to_start_one() -> None:
    refused = requests.exceptions.ConnectionError("refused")
    line = translate(refused, _call(), "APCA_API_BASE_URL").line()
    assert "127.0.0.1:9" in line and "APCA_API_BASE_URL" in line
    assert "alpaca-cli sandbox serve" in translate(refused, _call(), "X", sandbox=True).line()
