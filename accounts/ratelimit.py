"""Fixed-window counters in the shared cache, for limits that are not about
API keys: password-reset requests, recipient look-ups on the send page.

The cache is Redis in production (every process sees one count) and
per-process memory in the tests. A window is a fixed slice of time, so a
burst straddling two windows may reach twice the limit; for these limits
(a few per hour) that is plenty.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass

from django.core.cache import cache


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after_seconds: int

    @property
    def retry_after_minutes(self) -> int:
        return max(1, math.ceil(self.retry_after_seconds / 60))


def ratelimit_hit(*, scope: str, key: str, limit: int, window_seconds: int) -> Verdict:
    """Count one attempt of `key` (an address, a user id) in `scope`; refused
    once it is past `limit` in the current window. Keys are hashed, so no
    e-mail address is stored in the cache."""
    now = time.time()
    window = int(now // window_seconds)
    digest = hashlib.sha256(key.strip().lower().encode()).hexdigest()[:32]
    cache_key = f"ratelimit:{scope}:{digest}:{window}"
    cache.add(cache_key, 0, timeout=window_seconds + 5)
    try:
        count = cache.incr(cache_key)
    except ValueError:  # expired between add and incr
        cache.set(cache_key, 1, timeout=window_seconds + 5)
        count = 1
    retry_after = int((window + 1) * window_seconds - now) + 1
    return Verdict(allowed=count <= limit, retry_after_seconds=retry_after)
