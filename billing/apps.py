from django.apps import AppConfig

from usage import balance_changes


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = "Billing"

    def ready(self) -> None:
        # Imported here because they use models, which exist only once the app
        # registry is ready. `webhooks` connects the Stripe receivers: billing
        # is installed after djstripe, so they run after dj-stripe has synced
        # the event's object.
        from billing import receivers, webhooks  # noqa: F401

        for receiver in receivers.RECEIVERS:
            balance_changes.receiver_register(receiver)
