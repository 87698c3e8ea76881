from django.core.management.base import BaseCommand, CommandError

from accounts import services
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

    def handle(self, *args, org, name, scopes, **options):
        organization = Organization.objects.filter(slug=org).first()
        if organization is None:
            raise CommandError(f"No organization with slug “{org}”.")
        with acting_as("command:create_api_key"):
            try:
                key, secret = services.api_key_create(org=organization, name=name, scopes=scopes, actor="command:create_api_key")
            except TollgateError as error:
                raise CommandError(error.message) from None
        self.stderr.write(f"Created key {key.prefix} “{key.name}” for {organization.slug} with scopes {' '.join(key.scopes)}.")
        self.stdout.write(secret)
