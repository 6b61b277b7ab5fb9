"""Alpaca's REST rate limit: a budget of requests per minute for each API key.

A token bucket per key: it holds at most `per_minute` requests and refills
continuously at `per_minute / 60` a second, so a client that spends its
budget at once waits about 60/`per_minute` seconds per further request.
Pure apart from the injected clock (`time.time` by default), so tests of
the refill move time by hand instead of sleeping.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

DEFAULT_PER_MINUTE = 200


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of one request against the budget, and the headers it earns."""

    allowed: bool
    limit: int
    remaining: int
    reset: int  # Unix epoch seconds at which the bucket is full again
    retry_after: int  # seconds until one request fits (0 when allowed)

    def headers(self) -> dict[str, str]:
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset),
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after)
        return headers


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    """Per-key token buckets of `per_minute` requests (`per_minute` must be > 0)."""

    def __init__(self, per_minute: int = DEFAULT_PER_MINUTE, clock: Callable[[], float] = time.time) -> None:
        if per_minute <= 0:
            raise ValueError("per_minute must be > 0")
        self.per_minute = per_minute
        self.clock = clock
        self._rate = per_minute / 60.0
        self._buckets: dict[str, _Bucket] = {}

    def take(self, key: str) -> Verdict:
        """Spend one request of `key`'s budget if there is one; a refused request costs nothing."""
        now = self.clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(float(self.per_minute), now)
        bucket.tokens = min(float(self.per_minute), bucket.tokens + (now - bucket.at) * self._rate)
        bucket.at = now
        allowed = bucket.tokens >= 1.0
        if allowed:
            bucket.tokens -= 1.0
        missing = self.per_minute - bucket.tokens
        return Verdict(
            allowed=allowed,
            limit=self.per_minute,
            remaining=int(bucket.tokens),
            reset=math.ceil(now + missing / self._rate),
            retry_after=0 if allowed else max(1, math.ceil((1.0 - bucket.tokens) / self._rate)),
        )
