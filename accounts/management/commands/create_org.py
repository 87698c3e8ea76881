from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils.text import slugify

from accounts import services as account_services
from accounts.models import User
from billing_project.errors import TollgateError
from billing_project.request_context import acting_as
from orgs import services as org_services
from orgs.models import normalize_email


# Here, not in orgs, because a missing owner is signed up like anyone else
# (personal organization and trial included), and sign-up is accounts'.
class Command(BaseCommand):
    help = "Create a team organization owned by EMAIL (the user is created if missing)."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--owner", required=True, help="Owner's e-mail; created without a password if new.")
        parser.add_argument("--name", help="Display name (default: the slug).")

    def handle(self, *args, slug, owner, name=None, **options):
        email = normalize_email(owner)
        slug = slugify(slug)
        # One transaction: a refused organization leaves no new owner behind.
        with acting_as("command:create_org"), transaction.atomic():
            try:
                user = User.objects.filter(email=email).first()
                if user is None:
                    # No password: the owner sets one through "forgot password".
                    user = account_services.user_signup(email=email, password=None, reserved_slug=slug)
                    self.stdout.write(f"Created user {email} (set a password via the password-reset page).")
                org = org_services.org_create(name=name or slug, owner=user, slug=slug)
            except TollgateError as error:
                raise CommandError(error.message) from None
        self.stdout.write(self.style.SUCCESS(f"Created organization {org.slug} ({org.name}) owned by {email}."))
