from django.conf import settings
from django.core.management.base import BaseCommand

from billing_project import embedded


class Command(BaseCommand):
    help = "Start, stop or show the embedded PostgreSQL under var/ (used when DATABASE_URL is unset)."

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["start", "stop", "status"])

    def handle(self, *args, action, **options):
        if action == "stop":
            stopped = embedded.stop_postgres(settings.VAR_DIR)
            self.stdout.write("stopped" if stopped else "not running")
            return
        server = embedded.start_postgres(settings.VAR_DIR)  # "status" finds it running (settings started it)
        info = server.get_postmaster_info()
        self.stdout.write(f"running: pid {info.pid}, socket {info.socket_dir}, data {embedded.pgdata_dir(settings.VAR_DIR)}")
