"""Roll-ups of usage for the charts: sums per account, day, meter, model and
member (UsageRollup) and per account, day and workflow run (UsageRunRollup).

Exactly once: the events are cut into windows of `created_at`,
[rolled_until, until), and each run adds one window and moves the cursor in
the same transaction, under the cursor row's lock. A run killed half-way
rolls back whole; two runs at once take turns on the lock, the second finding
the window already done. Adding (not recomputing) keeps each run small.

A window may only close on events that can no longer appear in it: `until`
stays a settling margin behind now and behind the start of the oldest open
transaction, since an event's created_at is taken just before its
transaction writes it. So nothing committed later can land before the cursor.

The charts read roll-up rows plus the events at or after the cursor, in one
statement (one snapshot), so they are exact whether or not this ran lately.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import connection, transaction
from django.utils import timezone

from usage.models import RollupCursor

# How far behind now (and the oldest open transaction) a window may end.
SETTLE = timedelta(seconds=60)
# At most this much of the event stream per run; a backlog is caught up over several runs.
MAX_WINDOW = timedelta(days=7)

_ROLLUP_SQL = """
INSERT INTO usage_usagerollup (account_id, day, meter_id, model, member_id, credits_micros, quantity, events)
SELECT account_id, (occurred_at AT TIME ZONE 'UTC')::date, meter_id, model, member_id,
       sum(credits_micros), sum(quantity), count(*)
FROM usage_usageevent WHERE created_at >= %(since)s AND created_at < %(until)s
GROUP BY 1, 2, 3, 4, 5
ON CONFLICT (account_id, day, meter_id, model, member_id) DO UPDATE SET
    credits_micros = usage_usagerollup.credits_micros + EXCLUDED.credits_micros,
    quantity = usage_usagerollup.quantity + EXCLUDED.quantity,
    events = usage_usagerollup.events + EXCLUDED.events
"""

_RUN_ROLLUP_SQL = """
INSERT INTO usage_usagerunrollup (account_id, day, workflow_run_id, credits_micros, events, first_at, last_at)
SELECT account_id, (occurred_at AT TIME ZONE 'UTC')::date, workflow_run_id,
       sum(credits_micros), count(*), min(occurred_at), max(occurred_at)
FROM usage_usageevent WHERE created_at >= %(since)s AND created_at < %(until)s
GROUP BY 1, 2, 3
ON CONFLICT (account_id, day, workflow_run_id) DO UPDATE SET
    credits_micros = usage_usagerunrollup.credits_micros + EXCLUDED.credits_micros,
    events = usage_usagerunrollup.events + EXCLUDED.events,
    first_at = least(usage_usagerunrollup.first_at, EXCLUDED.first_at),
    last_at = greatest(usage_usagerunrollup.last_at, EXCLUDED.last_at)
"""


def _settled_until(now: datetime) -> datetime:
    """The latest window end no uncommitted event can fall before."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT min(xact_start) FROM pg_stat_activity WHERE xact_start IS NOT NULL AND pid <> pg_backend_pid()"
            " AND datname = current_database()"
        )
        oldest = cursor.fetchone()[0]
    until = now - SETTLE
    if oldest is not None and oldest - SETTLE < until:
        until = oldest - SETTLE
    return until


def usage_rollup(*, now: datetime | None = None, max_window: timedelta = MAX_WINDOW, max_windows: int = 50) -> int:
    """Add the settled events not rolled up yet to the roll-ups, a window per
    transaction (a long backlog takes several). Returns how many events it added."""
    now = now or timezone.now()
    settled = _settled_until(now)
    total = 0
    for _ in range(max_windows):
        added, more = _rollup_window(settled, max_window)
        total += added
        if not more:
            break
    return total


def _rollup_window(settled: datetime, max_window: timedelta) -> tuple[int, bool]:
    with transaction.atomic():
        # A callable default runs only when the row is created: min() over the events
        # table reads all of it (a BRIN index cannot answer min), once, not every minute.
        RollupCursor.objects.get_or_create(pk=1, defaults={"rolled_until": lambda: _first_event_time() or settled})
        cursor = RollupCursor.objects.select_for_update().get(pk=1)
        since = cursor.rolled_until
        until = min(settled, since + max_window)
        if until <= since:
            return 0, False
        params = {"since": since, "until": until}
        with connection.cursor() as db:
            db.execute("SELECT count(*) FROM usage_usageevent WHERE created_at >= %(since)s AND created_at < %(until)s",
                       params)
            added = db.fetchone()[0]
            if added:
                db.execute(_ROLLUP_SQL, params)
                db.execute(_RUN_ROLLUP_SQL, params)
        cursor.rolled_until = until
        cursor.save(update_fields=["rolled_until", "updated_at"])
    return added, until < settled


def _first_event_time() -> datetime | None:
    """Where a first run starts: the oldest event."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT min(created_at) FROM usage_usageevent")
        return cursor.fetchone()[0]
