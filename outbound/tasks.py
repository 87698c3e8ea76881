"""Celery tasks that deliver: one batch of deliveries, and the sweep of due ones.

(The task that turns a balance change into events is beside its receiver, in
outbound.receivers: services queue `deliver`, and receivers call services.)
"""

from __future__ import annotations

from celery import shared_task

from outbound import delivery


@shared_task(name="outbound.deliver")
def deliver(delivery_ids: list[int]) -> int:
    """Attempt each delivery that is due; one already claimed or done is skipped (the task may run twice)."""
    return sum(1 for pk in delivery_ids if delivery.delivery_attempt(delivery_id=pk) is not None)


@shared_task(name="outbound.deliveries_sweep")
def deliveries_sweep() -> int:
    """Beat, every 30 s: retries that came due, and anything a lost task left behind."""
    due = delivery.deliveries_due()
    for start in range(0, len(due), 50):
        deliver.delay(due[start:start + 50])
    return len(due)
