from django.core.management.base import BaseCommand
from django.db import transaction

from accounts import services as account_services
from accounts.models import OrgAPIKey, User
from billing import services as billing_services
from billing_project.request_context import acting_as
from orgs import services as org_services
from orgs.models import Organization
from usage.models import GrantSource
from usage.services import credits_grant
from usage.units import MICROS_PER_CREDIT

DEMO_EMAIL = "demo@tollgate.local"
DEMO_PASSWORD = "tollgate-demo"
DEMO_ORG = "demo"
DEMO_KEY_NAME = "demo (printed at start)"


class Command(BaseCommand):
    help = "Create the demo login and organization (idempotent) and print a fresh demo API key."

    def handle(self, *args, **options):
        with acting_as("command:seed_demo"), transaction.atomic():
            billing_services.catalog_load()  # rows the data file has and the database lacks
            user = User.objects.filter(email=DEMO_EMAIL).first()
            if user is None:
                user = account_services.user_signup(email=DEMO_EMAIL, password=DEMO_PASSWORD, full_name="Demo Owner")
            org = Organization.objects.filter(slug=DEMO_ORG).first()
            if org is None:
                org = org_services.org_create(name="Demo Co", owner=user, slug=DEMO_ORG)
            # The demo org: a Starter trial and some credits to spend.
            billing_services.trial_start(org=org, actor="command:seed_demo")
            credits_grant(
                org=org, amount_micros=2_000 * MICROS_PER_CREDIT, source=GrantSource.PROMO,
                idempotency_key="demo:welcome-credits", reason="Demo credits", actor="command:seed_demo",
            )
            # The secret of a key is shown once, so each start makes a new demo
            # key and revokes the one printed last time.
            for old in OrgAPIKey.objects.filter(org=org, name=DEMO_KEY_NAME, revoked=False):
                account_services.api_key_revoke(org=org, key=old, actor="command:seed_demo")
            _key, secret = account_services.api_key_create(
                org=org, name=DEMO_KEY_NAME, scopes=["read", "usage:write", "billing:write"], actor="command:seed_demo"
            )
        self.stdout.write(f"Demo login:   {DEMO_EMAIL} / {DEMO_PASSWORD}  (organization “{org.name}”, slug {org.slug})")
        self.stdout.write(f"Demo API key: {secret}")
