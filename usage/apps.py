from django.apps import AppConfig


class UsageConfig(AppConfig):
    name = "usage"
    verbose_name = "Usage and credits"

    def ready(self) -> None:
        # Imported here, not at the top: the module touches models, which load
        # only once the app registry is ready.
        from usage.notifications import usage_kinds_register

        usage_kinds_register()
