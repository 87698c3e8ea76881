from django.apps import AppConfig
from django.db.models.signals import post_save


class UsageConfig(AppConfig):
    name = "usage"
    verbose_name = "Usage and credits"

    def ready(self) -> None:
        # Imported here, not at the top: the module touches models, which load
        # only once the app registry is ready.
        from accounts import key_budgets
        from usage import balance_changes, observers
        from usage import schema  # noqa: F401  registers the OpenAPI description of spending tokens
        from usage.models import Hold
        from usage.notifications import usage_kinds_register
        from usage.selectors import api_key_spend_this_month, key_meter_choices
        from usage.units import credits_str, credits_to_micros

        usage_kinds_register()
        key_budgets.source_register(key_budgets.KeyBudgetSource(
            meter_choices=key_meter_choices, spent_this_month=api_key_spend_this_month,
            credits_to_micros=credits_to_micros, credits_str=credits_str,
        ))
        # /metrics (docs/operations.md): counted from the seams, not the writer.
        balance_changes.receiver_register(observers.balance_change_counted)
        post_save.connect(observers.hold_saved, sender=Hold, dispatch_uid="usage.observers.hold_saved")
