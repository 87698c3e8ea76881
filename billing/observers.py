"""What billing counts for /metrics: Stripe webhook deliveries by result.

dj-stripe saves each delivery's `WebhookEventTrigger` twice: when it arrives,
and once more when it is decided (valid or not, processed or failed). The
second save is counted, from `post_save`, so the Stripe receivers stay free of
it. Registered in `BillingConfig.ready()`.
"""

from __future__ import annotations

from djstripe.models import WebhookEventTrigger

from billing_project import metrics


def webhook_result(trigger: WebhookEventTrigger) -> str:
    """processed, failed (a handler raised: Stripe retries) or invalid (bad signature, other mode)."""
    if trigger.exception:
        return "failed"
    if not trigger.valid:
        return "invalid"
    return "processed" if trigger.processed else "failed"


def stripe_webhook_saved(sender, instance: WebhookEventTrigger, created: bool, **kwargs) -> None:
    if not created:
        # Outside dj-stripe's atomic block by design: the row (and the count) stays when processing failed.
        metrics.STRIPE_WEBHOOKS.labels(webhook_result(instance)).inc()
