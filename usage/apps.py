from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _install_functions(sender, using="default", **kwargs) -> None:
    # The ledger's lock-and-load SQL functions (usage.services._store), kept in
    # step with the code by CREATE OR REPLACE after every migrate (and when
    # the test database is built without migrations).
    from django.db import connections

    from usage.services._store import FUNCTIONS_SQL

    with connections[using].cursor() as cursor:
        cursor.execute(FUNCTIONS_SQL)


class UsageConfig(AppConfig):
    name = "usage"
    verbose_name = "Usage and credits"

    def ready(self) -> None:
        post_migrate.connect(_install_functions, sender=self, dispatch_uid="usage.install_functions")
