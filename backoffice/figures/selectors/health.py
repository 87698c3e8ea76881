"""Health of the money's plumbing: Stripe webhooks in (dj-stripe's
WebhookEventTrigger, one row per delivery) and signed events out (outbound
deliveries), and the last reconciliation with Stripe. These look at now, whatever month the report is about."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection

from billing.selectors import reconciliation_last_run

# A delivery verified but not processed after this long is stuck, not in flight.
STUCK_AFTER = timedelta(minutes=5)


@dataclass(frozen=True)
class Health:
    webhooks_24h: int
    webhooks_30d: int
    webhooks_failed_30d: int  # refused (bad signature, other mode) or whose handler raised
    webhooks_unprocessed: int  # verified, not processed, older than STUCK_AFTER (last 30 days)
    last_webhook_at: datetime | None
    outbound_failed_30d: int  # deliveries given up on
    outbound_retrying: int  # pending after at least one failed attempt
    endpoints_failing: int
    endpoints_disabled: int
    now: datetime
    reconciled_at: datetime | None = None  # when the last finished reconciliation with Stripe started
    reconciliation_drift: int | None = None  # what it found (None: none has run)
    reconciliation_run_id: int | None = None

    @property
    def last_webhook_age(self) -> timedelta | None:
        return None if self.last_webhook_at is None else self.now - self.last_webhook_at


_WEBHOOKS_SQL = """
SELECT count(*) FILTER (WHERE created >= %(day)s),
       count(*),
       count(*) FILTER (WHERE NOT valid OR exception <> ''),
       count(*) FILTER (WHERE valid AND NOT processed AND exception = '' AND created < %(stuck)s),
       (SELECT max(created) FROM djstripe_webhookeventtrigger)
FROM djstripe_webhookeventtrigger WHERE created >= %(month)s AND created < %(now)s
"""

_OUTBOUND_SQL = """
SELECT (SELECT count(*) FROM outbound_delivery WHERE state = 'failed' AND created_at >= %(month)s),
       (SELECT count(*) FROM outbound_delivery WHERE state = 'pending' AND attempts > 0),
       (SELECT count(*) FROM outbound_webhookendpoint WHERE failing_since IS NOT NULL AND disabled_at IS NULL),
       (SELECT count(*) FROM outbound_webhookendpoint WHERE disabled_at IS NOT NULL)
"""


def health_now(*, now: datetime) -> Health:
    params = {"day": now - timedelta(days=1), "month": now - timedelta(days=30), "stuck": now - STUCK_AFTER, "now": now}
    with connection.cursor() as cursor:
        cursor.execute(_WEBHOOKS_SQL, params)
        day, month, failed, unprocessed, last = cursor.fetchone()
        cursor.execute(_OUTBOUND_SQL, params)
        out_failed, retrying, failing, disabled = cursor.fetchone()
    reconciled = reconciliation_last_run()
    return Health(
        webhooks_24h=day, webhooks_30d=month, webhooks_failed_30d=failed, webhooks_unprocessed=unprocessed,
        last_webhook_at=last, outbound_failed_30d=out_failed, outbound_retrying=retrying,
        endpoints_failing=failing, endpoints_disabled=disabled, now=now,
        reconciled_at=reconciled.started_at if reconciled else None,
        reconciliation_drift=reconciled.findings_count if reconciled else None,
        reconciliation_run_id=reconciled.pk if reconciled else None,
    )
