from django.core.management.base import BaseCommand, CommandError

from billing import gateway, services
from billing_project.errors import TollgateError
from billing_project.request_context import acting_as


class Command(BaseCommand):
    help = (
        "Load the catalog data file (plans, packs, overage) into the database, then create or update the "
        "matching Stripe Products, Prices and overage Meter (idempotent, by lookup key) and sync them through dj-stripe."
    )

    def add_arguments(self, parser):
        parser.add_argument("--reset", action="store_true",
                            help="Reset catalog rows to the data file's values (staff edits in the admin are lost).")
        parser.add_argument("--local", action="store_true", help="Only load the data file; do not talk to Stripe.")

    def handle(self, *args, reset=False, local=False, **options):
        with acting_as("command:sync_catalog"):
            counts = services.catalog_load(overwrite=reset)
            self.stdout.write(f"Catalog: {counts['created']} rows created, {counts['updated']} reset from the data file.")
            if local:
                return
            if not gateway.configured():
                raise CommandError("Stripe is not configured (STRIPE_SECRET_KEY is empty): the catalog was loaded locally only.")
            try:
                report = services.catalog_sync()
            except TollgateError as error:
                raise CommandError(error.message) from error
        for outcome in ("created", "updated", "unchanged"):
            items = getattr(report, outcome)
            self.stdout.write(f"Stripe {outcome}: {len(items)}" + (f" ({', '.join(items)})" if items and outcome != "unchanged" else ""))
