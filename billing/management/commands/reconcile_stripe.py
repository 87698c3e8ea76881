from datetime import datetime, time
from datetime import timezone as dt_timezone

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from billing import services
from billing_project.request_context import acting_as


def _since(value: str) -> datetime:
    """A day (YYYY-MM-DD, from its start, UTC) or a moment (ISO 8601)."""
    moment = parse_datetime(value)
    if moment is None:
        day = parse_date(value)
        if day is None:
            raise CommandError(f"--since takes a date (YYYY-MM-DD) or an ISO 8601 time, not {value!r}.")
        moment = datetime.combine(day, time.min)
    return moment if timezone.is_aware(moment) else timezone.make_aware(moment, dt_timezone.utc)


class Command(BaseCommand):
    help = (
        "Check what Stripe was paid (dj-stripe's tables) against what the ledger granted, clawed back and "
        "settled, and every cached balance against the ledger; store the run, e-mail staff of drift, and "
        "exit 1 listing it."
    )

    def add_arguments(self, parser):
        parser.add_argument("--since", help="Only Stripe objects and grants made since this date (YYYY-MM-DD) or time.")
        parser.add_argument("--no-notify", action="store_true", help="Do not e-mail staff about drift.")

    def handle(self, *args, since=None, no_notify=False, **options):
        start = _since(since) if since else None
        with acting_as("command:reconcile_stripe"):
            run = services.stripe_reconcile(since=start, trigger="command", notify=not no_notify)
        for finding in run.findings.order_by("id"):
            sides = " ".join(part for part in (finding.stripe_id, finding.local_model and
                                               f"{finding.local_model}:{finding.local_pk}") if part)
            self.stderr.write(f"{finding.get_kind_display()}: {finding.message} [{sides}]")
        checked = ", ".join(f"{n} {name.replace('_', ' ')}" for name, n in run.checked.items())
        if run.findings_count:
            raise CommandError(f"Run {run.pk}: {run.findings_count} drift(s) found (checked {checked}).")
        self.stdout.write(self.style.SUCCESS(f"Run {run.pk}: no drift (checked {checked})."))
