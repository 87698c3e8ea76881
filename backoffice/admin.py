"""The admin's index, tidied for staff: of dj-stripe's many models only those a
support or finance person opens stay listed (read-only copies of Stripe's
objects; Tollgate never writes them), and the one "API keys" entry is the
organizations' keys (accounts), not the two libraries' own.

This module is imported by admin autodiscovery after dj-stripe's and
rest_framework_api_key's (INSTALLED_APPS order), so their models are registered
by the time it runs."""

from django.contrib import admin
from djstripe import admin as djstripe_admin  # noqa: F401 - registers dj-stripe's models first
from djstripe import models as djstripe_models
from rest_framework_api_key import admin as api_key_admin  # noqa: F401 - registers the library's APIKey first
from rest_framework_api_key.models import APIKey

# What staff look at: customers and what they paid, what Stripe told us, and the webhook's health.
DJSTRIPE_KEPT = {
    djstripe_models.Customer, djstripe_models.Subscription, djstripe_models.Invoice, djstripe_models.Charge,
    djstripe_models.PaymentIntent, djstripe_models.Refund, djstripe_models.Dispute, djstripe_models.Session,
    djstripe_models.Event, djstripe_models.WebhookEventTrigger, djstripe_models.WebhookEndpoint,
    djstripe_models.Product, djstripe_models.Price, djstripe_models.PromotionCode,
}


def _view_only(admin_class: type[admin.ModelAdmin]) -> type[admin.ModelAdmin]:
    """dj-stripe's admin for a model, without Add, Change or Delete: its rows are
    copies of Stripe's objects, written only by webhooks and syncs, so an edit
    here would make Tollgate disagree with Stripe (and reconciliation with it)."""

    def refuse(self, request, obj=None) -> bool:
        return False

    return type(f"ViewOnly{admin_class.__name__}", (admin_class,), {
        "has_add_permission": refuse, "has_change_permission": refuse, "has_delete_permission": refuse,
    })


def _tidy() -> None:
    for model, model_admin in list(admin.site._registry.items()):
        if model._meta.app_label != "djstripe":
            continue
        admin.site.unregister(model)
        if model in DJSTRIPE_KEPT:
            admin.site.register(model, _view_only(type(model_admin)))
    # The library's own key model is unused: Tollgate's keys are accounts.OrgAPIKey ("API keys").
    if admin.site.is_registered(APIKey):
        admin.site.unregister(APIKey)


_tidy()
