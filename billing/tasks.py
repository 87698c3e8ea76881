"""Billing's background work. Tasks take ids and call one service; each is
safe to run twice and to be killed half-way (see the services for how)."""

from celery import shared_task

from billing import services
from billing_project.request_context import acting_as


@shared_task(name="billing.auto_topup_check")
def auto_topup_check(org_id: int) -> int | None:
    """Queued after commit when a debit leaves the balance under the threshold."""
    with acting_as("task:billing.auto_topup_check"):
        attempt = services.auto_topup_check(org_id=org_id)
    return attempt.pk if attempt else None


@shared_task(name="billing.auto_topup_retry")
def auto_topup_retry() -> int:
    with acting_as("task:billing.auto_topup_retry"):
        return services.auto_topup_retry_due()


@shared_task(name="billing.overage_report")
def overage_report(org_id: int) -> int | None:
    """Queued after commit when debt grows on an account that allows overage."""
    with acting_as("task:billing.overage_report"):
        report = services.overage_report(org_id=org_id)
    return report.pk if report else None


@shared_task(name="billing.overage_report_all")
def overage_report_all() -> int:
    with acting_as("task:billing.overage_report_all"):
        return services.overage_report_all()


@shared_task(name="billing.grace_periods_end")
def grace_periods_end() -> int:
    with acting_as("task:billing.grace_periods_end"):
        return services.grace_periods_end()


@shared_task(name="billing.trials_end")
def trials_end() -> int:
    with acting_as("task:billing.trials_end"):
        return services.trials_end()


@shared_task(name="billing.free_periods_renew")
def free_periods_renew() -> int:
    with acting_as("task:billing.free_periods_renew"):
        return services.free_periods_renew()


@shared_task(name="billing.alerts_check")
def alerts_check(org_id: int) -> list[str]:
    """Queued after commit when a ledger write takes the balance across the low line or to zero."""
    with acting_as("task:billing.alerts_check"):
        return services.alerts_check(org_id=org_id)


@shared_task(name="billing.alerts_sweep")
def alerts_sweep() -> int:
    with acting_as("task:billing.alerts_sweep"):
        return services.alerts_sweep()


@shared_task(name="billing.reminders_send")
def reminders_send() -> int:
    """Beat, every 15 minutes: trials and grace periods ending, renewals coming."""
    with acting_as("task:billing.reminders_send"):
        return services.reminders_send()


@shared_task(name="billing.stripe_reconcile")
def stripe_reconcile(trigger: str = "beat") -> int:
    """Beat, nightly (and staff's "run now"): Stripe against the ledger, and the
    cached balances against the ledger; stores the run, tells staff of drift."""
    with acting_as("task:billing.stripe_reconcile"):
        return services.stripe_reconcile(trigger=trigger).pk
