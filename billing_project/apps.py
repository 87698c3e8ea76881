from celery import signals as celery_signals
from django.apps import AppConfig

from billing_project import metrics


class BillingProjectConfig(AppConfig):
    name = "billing_project"
    verbose_name = "Tollgate"

    def ready(self) -> None:
        # /metrics (docs/operations.md): task failures from every worker, and each
        # kind of Celery process cleaning its metrics directory as it starts.
        celery_signals.task_failure.connect(task_failed, dispatch_uid="tollgate.metrics.task_failure")
        celery_signals.task_retry.connect(task_retried, dispatch_uid="tollgate.metrics.task_retry")
        celery_signals.worker_init.connect(process_started, dispatch_uid="tollgate.metrics.worker_init")
        celery_signals.beat_init.connect(process_started, dispatch_uid="tollgate.metrics.beat_init")


def task_failed(sender=None, **kwargs) -> None:
    metrics.TASK_FAILURES.labels(getattr(sender, "name", "unknown")).inc()


def task_retried(sender=None, **kwargs) -> None:
    metrics.TASK_RETRIES.labels(getattr(sender, "name", "unknown")).inc()


def process_started(**kwargs) -> None:
    metrics.directory_clean()
