from django.apps import AppConfig


class OrgsConfig(AppConfig):
    name = "orgs"
    verbose_name = "Organizations"

    def ready(self) -> None:
        # Imported here, not at the top: an app's modules that touch models
        # load once the app registry is ready.
        from orgs.notifications import org_kinds_register

        org_kinds_register()
