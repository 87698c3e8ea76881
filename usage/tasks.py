"""Scheduled ledger upkeep. Each task is safe to run twice and to be killed
half-way: every unit of work is its own transaction under the account lock."""

import logging

from celery import shared_task

from billing_project.request_context import acting_as
from usage import services

logger = logging.getLogger(__name__)


@shared_task(name="usage.holds_expire")
def holds_expire() -> int:
    with acting_as("task:usage.holds_expire"):
        return services.holds_expire()


@shared_task(name="usage.grants_expire")
def grants_expire() -> int:
    with acting_as("task:usage.grants_expire"):
        return services.grants_expire()


@shared_task(name="usage.ledger_reconcile")
def ledger_reconcile() -> int:
    mismatches = services.ledger_reconcile()
    for m in mismatches:
        logger.error("Ledger mismatch for %s: %s cached %s, entries say %s", m.org_slug, m.what, m.cached_micros, m.actual_micros)
    return len(mismatches)


@shared_task(name="usage.usage_rollup")
def usage_rollup() -> int:
    """Beat, every minute: add settled usage events to the charts' roll-ups."""
    with acting_as("task:usage.usage_rollup"):
        return services.usage_rollup()


@shared_task(name="usage.runaway_check")
def runaway_check() -> int:
    """Beat, every 5 minutes: spend far above its usual rate raises usage.unusual (and may pause the key)."""
    with acting_as("task:usage.runaway_check"):
        return len(services.runaway_check())
