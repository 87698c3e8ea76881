from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = "Billing"

    def ready(self) -> None:
        # Connects the Stripe webhook receivers. Billing is installed after
        # djstripe, so they run after dj-stripe has synced the event's object.
        from billing import webhooks  # noqa: F401
