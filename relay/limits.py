"""Per-channel callback rate limits kept in process memory."""

from __future__ import annotations

import math
import threading
import time


class RateLimiter:
    """A token bucket per channel.

    Buckets live in one worker process, so with W workers a channel can reach
    W times the configured rate; the stored per-channel quota is global.
    """

    def __init__(self, rate_per_s: float, burst: int, max_keys: int = 10000) -> None:
        self.rate = rate_per_s
        self.burst = burst
        self.max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def acquire(self, key: str) -> float:
        """Take one token; return 0 on success or the seconds to wait."""
        now = time.monotonic()
        with self._lock:
            tokens, stamp = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - stamp) * self.rate)
            if tokens >= 1:
                self._store(key, tokens - 1, now)
                return 0.0
            self._store(key, tokens, now)
            return (1 - tokens) / self.rate

    def _store(self, key: str, tokens: float, now: float) -> None:
        # Bound memory: when too many channels are tracked, forget full buckets.
        if key not in self._buckets and len(self._buckets) >= self.max_keys:
            self._buckets = {
                k: v for k, v in self._buckets.items() if v[0] < self.burst - 1
            }
        self._buckets[key] = (tokens, now)


def retry_after_seconds(wait_s: float) -> int:
    """Round a wait up to whole seconds for a Retry-After header."""
    return max(1, math.ceil(wait_s))
