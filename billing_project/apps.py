from django.apps import AppConfig


class BillingProjectConfig(AppConfig):
    name = "billing_project"
    verbose_name = "Tollgate"
