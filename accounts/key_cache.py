"""A per-process cache of what the API key check reads: the key's row and its
organization's, by prefix.

Every API call authenticates, and without this each one costs a PostgreSQL
round trip for a row that changes a few times in its life (profiled: the key
lookup was most of the 0.8 ms that authentication cost before any endpoint
work). Each process keeps a row for at most `API_KEY_CACHE_SECONDS` (one
second by default) after reading it, so revoking or expiring a key, pausing
it, changing its budget or meters, pausing an organization's usage or changing
who pays for it take effect on every process within that time, with no message
between processes to lose. The process that revokes a key forgets it at once.

What is cached is the row, not a verdict: the secret is checked against the
row's hash, and revoked/expired read from it, on every call; every call gets
model instances of its own. An unknown prefix is never cached, so a key made a
moment ago works at once on every process.

Ages are read from the wall clock, and a row whose age is negative (the clock
went back) is read again: a clock step can shorten the window, never stretch it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings

from accounts import selectors
from accounts.models import OrgAPIKey

# Only rows of keys that exist are kept, so this bounds memory by the keys in
# use; past it the cache starts again (one query per key on its next call).
MAX_KEYS = 10_000


@dataclass(slots=True)
class _Entry:
    row: tuple
    loaded_at: float
    # When this process last recorded the key's use (last_used_at), so that a
    # cached row older than that write does not make every call write it again.
    used_at: datetime | None = None


_entries: dict[str, _Entry] = {}


def api_key_cached(prefix: str) -> OrgAPIKey | None:
    """The key with this prefix and its organization (fresh instances), read from
    PostgreSQL at most API_KEY_CACHE_SECONDS ago; None when no key has it."""
    seconds = settings.API_KEY_CACHE_SECONDS
    if seconds <= 0:
        return selectors.api_key_with_org(prefix)
    now = time.time()
    entry = _entries.get(prefix)
    if entry is None or not 0 <= now - entry.loaded_at < seconds:
        # The time before the read: the row is at least this fresh.
        row = selectors.api_key_row(prefix)
        if row is None:
            _entries.pop(prefix, None)
            return None
        if len(_entries) >= MAX_KEYS:
            _entries.clear()
        entry = _entries[prefix] = _Entry(row, now, entry.used_at if entry is not None else None)
    # Its lists (scopes, meters) copied too: a call may change its instances.
    key = selectors.api_key_from_row(tuple(list(v) if isinstance(v, list) else v for v in entry.row))
    if entry.used_at is not None and (key.last_used_at is None or entry.used_at > key.last_used_at):
        key.last_used_at = entry.used_at
    return key


def api_key_used(prefix: str, at: datetime) -> None:
    """Remember that this process recorded the key's use at `at`."""
    entry = _entries.get(prefix)
    if entry is not None:
        entry.used_at = at


def api_key_forget(prefix: str) -> None:
    """Drop the key's row: this process's next call with it reads PostgreSQL."""
    _entries.pop(prefix, None)


def api_keys_forget_all() -> None:
    _entries.clear()
