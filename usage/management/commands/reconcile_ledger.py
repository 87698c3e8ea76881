from django.core.management.base import BaseCommand, CommandError

from orgs.models import Organization
from usage import services
from usage.units import credits_str


class Command(BaseCommand):
    help = "Prove every cached balance equals the sum of its ledger entries; exit 1 naming the accounts that differ."

    def add_arguments(self, parser):
        parser.add_argument("--org", action="append", help="Only this organization's slug (repeatable).")

    def handle(self, *args, org=None, **options):
        org_ids = None
        if org:
            found = dict(Organization.objects.filter(slug__in=org).values_list("slug", "pk"))
            unknown = sorted(set(org) - set(found))
            if unknown:  # a typo must not read as "every balance is right"
                raise CommandError(f"No organization with slug {', '.join(unknown)}.")
            org_ids = list(found.values())
        mismatches = services.ledger_reconcile(org_ids=org_ids)
        for m in mismatches:
            self.stderr.write(
                f"{m.org_slug}: {m.what} cached {credits_str(m.cached_micros)}, entries say {credits_str(m.actual_micros)}"
            )
        if mismatches:
            names = sorted({m.org_slug for m in mismatches})
            raise CommandError(f"{len(names)} account(s) differ: {', '.join(names)}")
        self.stdout.write(self.style.SUCCESS("Every cached balance equals the sum of its entries."))
