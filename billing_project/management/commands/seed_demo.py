from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction

from accounts import services as account_services
from accounts.models import OrgAPIKey, User
from billing import services as billing_services
from billing_project.errors import AuthenticationFailed
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
# The demo key's secret, kept beside the embedded data (like var/secret_key) so
# every start prints the same key: one a newcomer pasted into a script keeps working.
DEMO_KEY_FILE = "demo_api_key"


class Command(BaseCommand):
    help = "Create the demo login and organization (idempotent) and print the demo API key."

    def handle(self, *args, **options):
        key_file = Path(settings.VAR_DIR) / DEMO_KEY_FILE
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
            secret = _kept_key(key_file, org)
            if secret is None:
                # A secret is stored only hashed: a demo key whose secret is lost
                # (no file, another database) is revoked and a new one made.
                for old in OrgAPIKey.objects.filter(org=org, name=DEMO_KEY_NAME, revoked=False):
                    account_services.api_key_revoke(org=org, key=old, actor="command:seed_demo")
                _key, secret = account_services.api_key_create(
                    org=org, name=DEMO_KEY_NAME, scopes=["read", "usage:write", "billing:write"],
                    actor="command:seed_demo",
                )
                _keep_key(key_file, secret)
                note = "new"
            else:
                note = "the same as at the last start"
        self.stdout.write(f"Demo login:   {DEMO_EMAIL} / {DEMO_PASSWORD}  (organization “{org.name}”, slug {org.slug})")
        self.stdout.write(f"Demo API key: {secret}  ({note})")


def _kept_key(key_file: Path, org: Organization) -> str | None:
    """The secret printed last time, while it still opens the demo organization."""
    try:
        secret = key_file.read_text().strip()
    except FileNotFoundError:
        return None
    try:
        check = account_services.api_key_authenticate(raw_key=secret)
    except AuthenticationFailed:
        return None
    return secret if check.org.pk == org.pk and check.key.name == DEMO_KEY_NAME else None


def _keep_key(key_file: Path, secret: str) -> None:
    key_file.parent.mkdir(parents=True, exist_ok=True)
    key_file.touch(mode=0o600)
    key_file.write_text(secret)
