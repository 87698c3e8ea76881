from django.apps import AppConfig

from usage import balance_changes


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = "Billing"

    def ready(self) -> None:
        # Imported here: these modules touch models, loaded once the registry is ready.
        # webhooks connects the Stripe receivers (billing is installed after
        # djstripe, so they run after dj-stripe has synced the event's object);
        # tasks registers billing's Celery tasks by name, which services queue
        # by that name (billing.tasks imports billing.services, so the services
        # cannot import it back).
        from billing import receivers, tasks, webhooks  # noqa: F401
        from billing.notifications import billing_kinds_register

        billing_kinds_register()
        for receiver in receivers.RECEIVERS:
            balance_changes.receiver_register(receiver)
