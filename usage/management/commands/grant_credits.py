import uuid

from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_datetime

from billing_project.errors import TollgateError
from billing_project.request_context import acting_as
from orgs.models import Organization
from usage import services
from usage.models import GrantSource
from usage.units import AmountError, credits_str, credits_to_micros


class Command(BaseCommand):
    help = "Grant credits to an organization as an operator adjustment (a ledger entry with a reason)."

    def add_arguments(self, parser):
        parser.add_argument("--org", required=True, help="The organization's slug.")
        parser.add_argument("--credits", required=True, help="Credits to grant, e.g. 500 or 2.5.")
        parser.add_argument("--reason", required=True, help="Why; kept on the entry and in the audit trail.")
        parser.add_argument("--expires-at", help="ISO 8601 date-time after which the credits expire.")
        parser.add_argument("--idempotency-key", help="Run twice with the same key to grant once (default: a new key).")

    def handle(self, *args, org, credits, reason, expires_at=None, idempotency_key=None, **options):
        organization = Organization.objects.filter(slug=org).first()
        if organization is None:
            raise CommandError(f"No organization with slug “{org}”.")
        try:
            amount = credits_to_micros(credits)
        except AmountError as error:
            raise CommandError(str(error)) from None
        if amount <= 0:
            raise CommandError("--credits must be greater than zero.")
        if not reason.strip():
            raise CommandError("--reason must say why.")
        expiry = None
        if expires_at:
            expiry = parse_datetime(expires_at)
            if expiry is None or expiry.tzinfo is None:
                raise CommandError("--expires-at must be an ISO 8601 date-time with a time zone, e.g. 2027-01-01T00:00:00Z.")
        key = f"command:grant_credits:{idempotency_key or uuid.uuid4().hex}"
        with acting_as("command:grant_credits"):
            try:
                entry = services.credits_grant(
                    org=organization, amount_micros=amount, source=GrantSource.ADJUSTMENT, reason=reason.strip(),
                    idempotency_key=key, expires_at=expiry, actor="command:grant_credits",
                )
            except TollgateError as error:
                raise CommandError(error.message) from None
        self.stdout.write(self.style.SUCCESS(
            f"Granted {credits_str(amount)} credits to {organization.slug} (entry {entry.pk}); "
            f"balance {credits_str(entry.balance_after_micros)}."
        ))
