from django.apps import AppConfig


class BackofficeConfig(AppConfig):
    name = "backoffice"
    verbose_name = "Back office"

    def ready(self) -> None:
        # Imported here: the formats read billing's money rules, loaded with the apps.
        from billing.templatetags import credits as credits_tags
        from billing_project import admin_base
        from usage.units import MICROS_PER_CREDIT, format_credits

        def credits(micros: int) -> str:
            # Exact to the micro-credit: a usage event of 0.0003 credits is not "0".
            unit = "credit" if abs(micros) == MICROS_PER_CREDIT else "credits"
            return f"{format_credits(micros, places=6)} {unit} ({credits_tags.credits_money(micros)})"

        admin_base.amount_formats_register(credits=credits, money=credits_tags.money_filter)
