from django.core.management.base import BaseCommand

from billing_project.request_context import acting_as
from usage.services import rates


class Command(BaseCommand):
    help = "Create or update meters and rates from the rate card file (default usage/data/rate_card.json)."

    def add_arguments(self, parser):
        parser.add_argument("--file", default=str(rates.DATA_FILE))

    def handle(self, *args, file, **options):
        with acting_as("command:load_rate_card"):
            meters, count = rates.rate_card_load(path=file, actor="command:load_rate_card")
        self.stdout.write(self.style.SUCCESS(f"Loaded {meters} meters and {count} rates from {file}."))
