from django.core.management.base import BaseCommand, CommandError

from billing import services
from billing_project.errors import TollgateError
from billing_project.request_context import acting_as


class Command(BaseCommand):
    help = (
        "Connect this Tollgate to Stripe: register STRIPE_SECRET_KEY with dj-stripe (fetching the account) "
        "and create the webhook endpoint at SITE_URL, or record STRIPE_WEBHOOK_SECRET for an endpoint made "
        "elsewhere. Idempotent."
    )

    def add_arguments(self, parser):
        parser.add_argument("--base-url", help="Public base URL Stripe posts to (default: SITE_URL).")

    def handle(self, *args, base_url=None, **options):
        with acting_as("command:stripe_setup"):
            try:
                result = services.stripe_setup(base_url=base_url)
            except TollgateError as error:
                raise CommandError(error.message) from error
        mode = "live" if result.livemode else "test"
        self.stdout.write(f"Stripe account {result.account_id} ({mode} mode).")
        if result.forwarded:
            self.stdout.write(f"Webhook secret recorded. Point Stripe (dashboard endpoint or `stripe listen --forward-to`) at:\n{result.endpoint_url}")
        else:
            verb = "Created" if result.endpoint_created else "Webhook endpoint already set up:"
            self.stdout.write(f"{verb} {result.endpoint_url}")
