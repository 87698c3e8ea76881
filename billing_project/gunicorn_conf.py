"""Gunicorn's hooks: `gunicorn -c python:billing_project.gunicorn_conf billing_project.wsgi`.

The master cleans the web processes' metrics directory before it forks its
workers, so a restart does not keep counting into stale files (docs/operations.md,
"Metrics").
"""

import os


def on_starting(server) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "billing_project.settings")
    # Imported here, in the master only: reading the settings sets PROMETHEUS_MULTIPROC_DIR,
    # which prometheus_client (imported by `metrics`) must find already set.
    from django.conf import settings  # noqa: PLC0415

    settings.METRICS_DIR  # noqa: B018  loads the settings module
    from billing_project import metrics  # noqa: PLC0415

    metrics.directory_clean()
