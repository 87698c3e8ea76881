from django.apps import AppConfig


class BackofficeConfig(AppConfig):
    name = "backoffice"
    verbose_name = "Back office"

    def ready(self) -> None:
        from billing.templatetags import credits as credits_tags  # apps are loaded only now
        from billing_project import admin_base

        admin_base.amount_formats_register(
            credits=lambda micros: f"{credits_tags.credits_label(micros)} ({credits_tags.credits_money(micros)})",
            money=credits_tags.money_filter,
        )
