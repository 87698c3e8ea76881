from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = "Billing"

    def ready(self) -> None:
        # Imported here, not at the top: models may load only once the app
        # registry is ready, which is what ready() waits for.
        from accounts import signups
        from billing import services as billing_services
        # Registers the Celery tasks, which services queue by name (see topup).
        from billing import tasks  # noqa: F401
        # Connects the Stripe webhook receivers. Billing is installed after
        # djstripe, so they run after dj-stripe has synced the event's object.
        from billing import webhooks  # noqa: F401

        signups.receiver_add(billing_services.trial_start_for_signup)
