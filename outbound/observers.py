"""What outbound counts for /metrics: delivery attempts to platforms' endpoints, by result.

Every attempt leaves one `DeliveryAttempt` row (outbound.delivery); `post_save`
counts it once its transaction commits, so the delivery code stays free of it.
Registered in `OutboundConfig.ready()`.
"""

from __future__ import annotations

from django.db import transaction

from billing_project import metrics
from outbound.models import DeliveryAttempt


def attempt_result(attempt: DeliveryAttempt) -> str:
    """succeeded (2xx), refused (an answer outside 2xx) or unreachable (no answer: timeout, refused target)."""
    if attempt.succeeded:
        return "succeeded"
    return "refused" if attempt.status_code is not None else "unreachable"


def attempt_saved(sender, instance: DeliveryAttempt, created: bool, **kwargs) -> None:
    if created:
        transaction.on_commit(metrics.OUTBOUND_DELIVERIES.labels(attempt_result(instance)).inc, robust=True)
