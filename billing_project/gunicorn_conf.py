"""Gunicorn's hooks: `gunicorn -c python:billing_project.gunicorn_conf billing_project.wsgi`.

The master cleans the web processes' metrics directory before it forks its
workers, so a restart does not keep counting into stale files (docs/operations.md,
"Metrics").
"""

import os
import signal


def on_starting(server) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "billing_project.settings")
    # Imported here, in the master only: reading the settings sets PROMETHEUS_MULTIPROC_DIR,
    # which prometheus_client (imported by `metrics`) must find already set.
    from django.conf import settings  # noqa: PLC0415

    settings.METRICS_DIR  # noqa: B018  loads the settings module
    from billing_project import metrics  # noqa: PLC0415

    metrics.directory_clean()


def post_worker_init(worker) -> None:
    """Workers ignore SIGINT: their master stops them (SIGQUIT, or SIGTERM).

    Ctrl-C in a terminal (and `kill -INT -- -PGID`) signals the whole process
    group, so a gthread worker got SIGINT and then its master's SIGQUIT; both
    run `handle_quit`, and the second, arriving inside the first's
    `ThreadPoolExecutor.shutdown`, waits forever on the lock the first holds.
    The worker then outlived `bin/run`, still bound to the port. With one
    signal per worker it exits as the master says.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
