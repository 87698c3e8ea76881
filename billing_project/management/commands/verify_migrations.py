import os
import signal
import subprocess
import sys
import time

import psycopg
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from psycopg import sql

TRIGGERS_SQL = "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'pgtrigger_%' AND NOT tgisinternal"


class Command(BaseCommand):
    help = (
        "Apply every migration to a fresh scratch database on the configured server, check the "
        "append-only triggers exist there, then drop it. The test suite skips migrations for speed; "
        "this proves they still build the schema a real deployment gets."
    )

    def handle(self, *args, **options):
        # bin/test stops this with SIGTERM on Ctrl-C: unwind, so the scratch database is dropped.
        signal.signal(signal.SIGTERM, _exit)
        db = settings.DATABASES["default"]
        scratch = f"tollgate_verify_migrations_{os.getpid()}"
        params = connection.get_connection_params()
        params.pop("dbname", None)
        params.pop("database", None)
        admin = psycopg.connect(**params, dbname="postgres", autocommit=True)
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(scratch)))
        started = time.monotonic()
        try:
            env = {**os.environ, "DATABASE_NAME": scratch, "DJANGO_SETTINGS_MODULE": "billing_project.settings"}
            result = subprocess.run(
                [sys.executable, "manage.py", "migrate", "--noinput"],
                cwd=settings.BASE_DIR, env=env, capture_output=True, text=True,
            )
            if result.returncode:
                raise CommandError(f"migrate failed:\n{result.stdout}\n{result.stderr}")
            with psycopg.connect(**params, dbname=scratch) as conn:
                triggers = conn.execute(TRIGGERS_SQL).fetchone()[0]
            if triggers == 0:
                raise CommandError("migrate ran but installed no append-only triggers")
        finally:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(scratch)))
            admin.close()
        self.stdout.write(
            f"Migrations apply cleanly to an empty database ({time.monotonic() - started:.0f} s, "
            f"{triggers} append-only triggers installed) on {db['HOST'] or 'localhost'}."
        )


def _exit(signum, frame):
    raise SystemExit(128 + signum)
