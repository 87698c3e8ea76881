from django.core.management.base import BaseCommand, CommandError

from accounts import key_budgets, services
from accounts.models import Scope
from billing_project.errors import TollgateError
from billing_project.request_context import acting_as
from orgs.models import Organization


class Command(BaseCommand):
    help = "Create an API key for an organization. The key is printed alone on the last line, once."

    def add_arguments(self, parser):
        parser.add_argument("--org", required=True, help="Organization slug.")
        parser.add_argument("--name", default="cli", help="A name for the key (default: cli).")
        parser.add_argument(
            "--scopes", nargs="+", default=list(services.DEFAULT_SCOPES),
            help=f"Scopes among {', '.join(Scope.values)} (default: {' '.join(services.DEFAULT_SCOPES)}).",
        )
        parser.add_argument(
            "--monthly-limit", default="",
            help="The most it may spend a calendar month (UTC), in credits; 0: nothing chargeable (default: no limit).",
        )
        parser.add_argument("--meters", nargs="*", default=[], help="Meter codes it may record (default: every meter).")

    def handle(self, *args, org, name, scopes, monthly_limit, meters, **options):
        organization = Organization.objects.filter(slug=org).first()
        if organization is None:
            raise CommandError(f"No organization with slug “{org}”.")
        with acting_as("command:create_api_key"):
            try:
                key, secret = services.api_key_create(
                    org=organization, name=name, scopes=scopes, actor="command:create_api_key",
                    monthly_limit_micros=key_budgets.limit_parse(monthly_limit), meters=meters,
                )
            except TollgateError as error:
                raise CommandError(error.message) from None
        budget = ""
        if key.monthly_limit_micros is not None:
            budget += f", a monthly limit of {key_budgets.limit_text(key.monthly_limit_micros)} credits"
        if key.meters:
            budget += f", meters {' '.join(key.meters)}"
        self.stderr.write(
            f"Created key {key.prefix} “{key.name}” for {organization.slug} with scopes {' '.join(key.scopes)}{budget}."
        )
        self.stdout.write(secret)
