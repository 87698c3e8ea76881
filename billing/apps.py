from django.apps import AppConfig
from django.db.models.signals import post_save

from usage import balance_changes


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = "Billing"

    def ready(self) -> None:
        # Imported here, not at the top: these modules touch models, which may
        # load only once the app registry is ready (what ready() waits for).
        # `tasks` registers billing's Celery tasks, which services queue by
        # name (billing.tasks imports billing.services, so the services cannot
        # import it back). `webhooks` connects the Stripe receivers: billing is
        # installed after djstripe, so they run after dj-stripe has synced the
        # event's object.
        from djstripe.models import WebhookEventTrigger

        from accounts import signups
        from billing import observers, receivers, tasks, webhooks  # noqa: F401
        from billing import selectors as billing_selectors
        from billing import services as billing_services
        from billing.notifications import billing_kinds_register
        from orgs import creations, entitlements

        billing_kinds_register()
        entitlements.plans_register(billing_selectors.PlanAnswers())
        signups.receiver_add(billing_services.trial_start_for_signup)
        creations.receiver_add(billing_services.free_start_for_new_org)
        for receiver in receivers.RECEIVERS:
            balance_changes.receiver_register(receiver)
        # /metrics (docs/operations.md): Stripe webhooks in, by result.
        post_save.connect(observers.stripe_webhook_saved, sender=WebhookEventTrigger,
                          dispatch_uid="billing.observers.stripe_webhook_saved")
