"""How every REST call reaches the broker: one deadline, one request budget, one retry policy.

alpaca-py's REST clients send through a `requests.Session` and would, left to
themselves, wait forever on a silent broker (they set no timeout), sleep a
fixed 3 s on 429 whatever `Retry-After` says, and never look at the rate the
broker announces. The bridge switches their own retries off and mounts
`BrokerAdapter` on each client's session, so that every request of every
client passes through this module:

- `Call` is one broker call under way (one SDK method, with its retries). It
  has a total deadline. Each request gets timeouts no longer than what is left
  of it, and the sockets it uses are registered, so that when the deadline
  passes the event loop can `abort()` the call: shutting the sockets down wakes
  a thread blocked on a broker that trickles one byte a second, which no
  per-read timeout would ever do.
- `RequestBudget` keeps under the rate the broker announces in
  `X-RateLimit-Limit/Remaining/Reset`, shared by all clients of one bridge,
  and after a 429 holds every request back until `Retry-After` (or the reset).
- `Call.run` retries what is safe to retry (reads after 5xx, dropped or
  truncated answers, 429) within the deadline, never a POST.

Everything here runs on the bridge's worker threads; nothing touches asyncio.
"""

from __future__ import annotations

import contextlib
import email.utils
import logging
import socket
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
from alpaca.common.exceptions import APIError
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from alpaca_cli.config import DEFAULT_DEADLINE

log = logging.getLogger(__name__)
T = TypeVar("T")

CONNECT_TIMEOUT = 5.0  # seconds to open a connection, within the deadline
TRANSIENT_RETRIES = 2  # reads retried after 5xx, dropped or truncated answers
RETRY_BASE = 0.25  # seconds before the first such retry, doubling
RATE_LIMIT_RETRIES = 5  # 429s waited out for one call (each as the broker says, within the deadline)


class DeadlineExceeded(Exception):
    """The call ran out of time (raised in the worker; the bridge tells the user)."""


class RateLimited(DeadlineExceeded):
    """The broker's rate limit leaves no room for the call's request before its deadline."""

    def __init__(self, wait: float) -> None:
        super().__init__(wait)
        self.wait = wait


class Call:
    """One broker call under way: its deadline, the last request it made, and its sockets.

    Created on the event loop, run on a worker thread (`run`), and aborted from
    the loop (`abort`) when the deadline passes or the command stops.
    """

    def __init__(
        self, what: str, deadline: float, *, lookup: bool = False, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.what = what
        self.lookup = lookup  # a lookup of one order, whose 404 can mean "no such order"
        self.seconds = deadline
        self._clock = clock
        self.expires = clock() + deadline
        self.aborted = threading.Event()
        self.method: str | None = None
        self.url: str | None = None
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()

    @property
    def route(self) -> str:
        """`GET /v2/account`: what the user can look for in the broker's docs."""
        if self.method is None or self.url is None:
            return self.what
        return f"{self.method} {urlsplit(self.url).path}"

    def remaining(self) -> float:
        return self.expires - self._clock()

    def sending(self, method: str, url: str) -> None:
        """A request of this call is about to go (called by the adapter)."""
        if self.aborted.is_set() or self.remaining() <= 0:
            raise DeadlineExceeded
        self.method, self.url = method, url

    def register(self, sock: socket.socket | None) -> None:
        """A socket this call reads from; shut down at once if the call is already over."""
        if sock is None:
            return
        with self._lock:
            self._sockets.add(sock)
        if self.aborted.is_set():
            self._shut(sock)

    def abort(self) -> None:
        """End the call now: its worker wakes from any wait or blocked read."""
        self.aborted.set()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            self._shut(sock)

    @staticmethod
    def _shut(sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)

    def sleep(self, seconds: float) -> None:
        """Wait `seconds` unless aborted; never past the deadline."""
        if seconds > self.remaining():
            raise DeadlineExceeded
        if self.aborted.wait(max(seconds, 0.0)):
            raise DeadlineExceeded

    def run(self, fn: Callable[..., T], *args: Any, retry: bool = True) -> T:
        """`fn(*args)` with this call current on the thread, retried as `retry_delay` allows."""
        _current.call = self
        try:
            failures = 0
            while True:
                try:
                    return fn(*args)
                except DeadlineExceeded:
                    raise
                except Exception as error:
                    if self.aborted.is_set():
                        raise DeadlineExceeded from error
                    delay = retry_delay(error, failures) if retry else None
                    if delay is None or delay >= self.remaining():
                        raise
                    failures += 1
                    log.debug("%s: %s, retry %d in %.2f s", self.route, type(error).__name__, failures, delay)
                    self.sleep(delay)
        finally:
            _current.call = None


_current = threading.local()


def current_call() -> Call | None:
    return getattr(_current, "call", None)


def retry_delay(error: BaseException, failures: int, *, now: Callable[[], float] = time.time) -> float | None:
    """Seconds to wait before trying `error`'s request again, or None to give up.

    429: as the broker says (`Retry-After`, else the rate-limit reset), a few
    times. 5xx and answers that broke off (connection dropped, body shorter
    than announced, no answer in time): a short doubling pause, twice.
    Anything else (a refusal, a malformed answer) is final.
    """
    if isinstance(error, APIError):
        status = error.status_code or 0
        if status == 429:
            if failures >= RATE_LIMIT_RETRIES:
                return None
            response = error.response
            return wait_after_429(response.headers if response is not None else {}, now=now)
        if status < 500:
            return None
    elif not isinstance(error, requests.exceptions.ConnectionError | requests.exceptions.ChunkedEncodingError):
        return None
    if failures >= TRANSIENT_RETRIES:
        return None
    return RETRY_BASE * 2**failures


def wait_after_429(headers: Mapping[str, str], *, now: Callable[[], float] = time.time) -> float:
    """Seconds a 429 asks us to wait: `Retry-After` (seconds or an HTTP date), else until the reset."""
    retry_after = headers.get("Retry-After")
    if retry_after:
        try:
            return max(float(retry_after), 0.0)
        except ValueError:
            with contextlib.suppress(TypeError, ValueError):
                return max(email.utils.parsedate_to_datetime(retry_after).timestamp() - now(), 0.0)
    reset = _number(headers.get("X-RateLimit-Reset"))
    if reset is not None:
        return max(reset - now(), 0.0)
    return 1.0


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


class RequestBudget:
    """The broker's request budget as it announces it, shared by every client of one bridge.

    Alpaca counts requests per account per minute and says on every answer how
    many are left (`X-RateLimit-Remaining`) and when the count starts over
    (`X-RateLimit-Reset`, Unix seconds). Requests sent since the last answer are
    subtracted too, so that four threads cannot spend the same remainder. A 429
    holds everything back for as long as it says.

    Once the remainder is spent, requests are paced rather than stopped until
    the reset: one every `(reset - now) / limit` seconds. A budget that refills
    continuously (a token bucket, whose reset is when it is *full* again) then
    serves them at its refill rate; one that starts over only at the reset
    answers the paced request with a 429, and its `Retry-After` holds the rest.
    """

    def __init__(self, *, now: Callable[[], float] = time.time) -> None:
        self._now = now
        self._lock = threading.Lock()
        self.limit: int | None = None
        self._remaining: int | None = None
        self._reset_at = 0.0
        self._held_until = 0.0
        self._sent_since_answer = 0
        self._last_sent_at = 0.0

    def wait_time(self) -> float:
        """Seconds before the next request may go (0: now)."""
        with self._lock:
            return self._wait_time_locked()

    def _wait_time_locked(self) -> float:
        now = self._now()
        wait = max(self._held_until - now, 0.0)
        spent = self._remaining is not None and self._remaining - self._sent_since_answer <= 0
        if spent and now < self._reset_at:
            left = self._reset_at - now
            wait = max(wait, self._last_sent_at + left / self.limit - now if self.limit else left)
        return wait

    def take(self, call: Call) -> None:
        """Wait for a place in the budget (within the call's deadline), then count the request."""
        while True:
            with self._lock:
                wait = self._wait_time_locked()
                if wait <= 0:
                    self._sent_since_answer += 1
                    self._last_sent_at = self._now()
                    return
            if wait >= call.remaining():
                raise RateLimited(wait)
            log.debug("%s: keeping under the broker's rate limit, waiting %.2f s", call.route, wait)
            call.sleep(wait)

    def unanswered(self) -> None:
        """A request counted by `take` got no answer (refused, dropped, aborted): stop counting it."""
        with self._lock:
            self._sent_since_answer = max(self._sent_since_answer - 1, 0)

    def observe(self, status: int, headers: Mapping[str, str]) -> None:
        """What one answer says of the budget."""
        limit = _number(headers.get("X-RateLimit-Limit"))
        remaining = _number(headers.get("X-RateLimit-Remaining"))
        reset = _number(headers.get("X-RateLimit-Reset"))
        with self._lock:
            self._sent_since_answer = max(self._sent_since_answer - 1, 0)
            if limit is not None:
                self.limit = int(limit)
            if remaining is not None and reset is not None:
                self._remaining, self._reset_at = int(remaining), reset
            if status == 429:
                self._held_until = max(self._held_until, self._now() + wait_after_429(headers, now=self._now))


class _Registering:
    """A urllib3 connection that registers its socket with the current call for every request."""

    sock: socket.socket | None

    def request(self, *args: Any, **kwargs: Any) -> None:
        call = current_call()
        try:
            super().request(*args, **kwargs)  # type: ignore[misc]
        finally:
            if call is not None:
                call.register(self.sock)


class _Connection(_Registering, HTTPConnection):
    pass


class _TLSConnection(_Registering, HTTPSConnection):
    pass


class _Pool(HTTPConnectionPool):
    ConnectionCls = _Connection


class _TLSPool(HTTPSConnectionPool):
    ConnectionCls = _TLSConnection


class BrokerAdapter(HTTPAdapter):
    """The session transport of the SDK's clients: budget, per-request timeouts, abortable sockets."""

    def __init__(self, budget: RequestBudget) -> None:
        self.budget = budget
        super().__init__(max_retries=0)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _Pool, "https": _TLSPool}

    def send(self, request: Any, stream: bool = False, timeout: Any = None, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        call = current_call()
        if call is not None:
            call.sending(request.method, request.url)
            self.budget.take(call)
            left = call.remaining()
            if left <= 0:
                raise DeadlineExceeded
            timeout = (min(CONNECT_TIMEOUT, left), left)
        elif timeout is None:
            timeout = (CONNECT_TIMEOUT, DEFAULT_DEADLINE)
        try:
            response = super().send(request, stream, timeout, *args, **kwargs)
        except BaseException:
            if call is not None:
                self.budget.unanswered()
            raise
        self.budget.observe(response.status_code, response.headers)
        return response


def mount(client: Any, budget: RequestBudget) -> Any:
    """Route an SDK REST client through `BrokerAdapter`, its own retries off (the bridge retries)."""
    adapter = BrokerAdapter(budget)
    client._session.mount("http://", adapter)
    client._session.mount("https://", adapter)
    client._retry = 0
    return client
