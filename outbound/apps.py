from django.apps import AppConfig
from django.db.models.signals import post_save

from usage import balance_changes, happenings


class OutboundConfig(AppConfig):
    name = "outbound"
    verbose_name = "Outbound webhooks"

    def ready(self) -> None:
        # Imported here, not at the top: these modules touch models, which may
        # load only once the app registry is ready. `tasks` registers the Celery tasks.
        from outbound import observers, receivers, tasks  # noqa: F401
        from outbound.models import DeliveryAttempt
        from outbound.notifications import outbound_kinds_register

        outbound_kinds_register()
        balance_changes.receiver_register(receivers.balance_events_when_crossing)
        happenings.receiver_register(receivers.event_from_happening)
        # /metrics (docs/operations.md): delivery attempts, by result.
        post_save.connect(observers.attempt_saved, sender=DeliveryAttempt, dispatch_uid="outbound.observers.attempt_saved")
