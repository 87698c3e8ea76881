"""LOG_FORMAT=json: one JSON object a line, carrying the request id."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys

from django.conf import settings
from django.utils.module_loading import import_string

from billing_project import request_context


def json_handler(stream) -> logging.Handler:
    """A handler built from the settings' own `json` formatter and request-id filter."""
    config = dict(settings.LOGGING["formatters"]["json"])
    formatter = import_string(config.pop("()"))(**config)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    handler.addFilter(request_context.RequestIdLogFilter())
    return handler


def test_a_line_logged_in_a_request_carries_its_id():
    stream = io.StringIO()
    log = logging.getLogger("tests.ops.json")
    log.addHandler(json_handler(stream))
    log.propagate = False
    try:
        token = request_context.set_current(request_context.RequestContext(request_id="req-123"))
        try:
            log.warning("debited %s credits", 5)
        finally:
            request_context.reset(token)
        log.warning("outside any request")
    finally:
        log.handlers.clear()
        log.propagate = True
    inside, outside = (json.loads(line) for line in stream.getvalue().splitlines())
    assert inside["message"] == "debited 5 credits"
    assert inside["request_id"] == "req-123"
    assert inside["level"] == "WARNING" and inside["logger"] == "tests.ops.json" and inside["time"]
    assert outside["request_id"] == ""


def test_the_server_logs_json_lines_with_the_request_id_when_asked():
    """A real process started with LOG_FORMAT=json: the request's own line, and
    Django's "Not Found" warning (logged after the middleware has finished),
    both name the request."""
    script = (
        "import django; django.setup()\n"
        "from django.test import Client\n"
        "Client().get('/api/v1/no-such-endpoint', HTTP_X_REQUEST_ID='trace-abc.1')\n"
    )
    env = {**os.environ, "LOG_FORMAT": "json", "DJANGO_SETTINGS_MODULE": "tests.settings"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60,
                          cwd=settings.BASE_DIR)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert lines, done.stderr
    not_found = next(line for line in lines if line["message"].startswith("Not Found"))
    assert not_found["request_id"] == "trace-abc.1"
    assert not_found["level"] == "WARNING"
    request = next(line for line in lines if line["logger"] == "tollgate.requests")
    assert request["message"] == "GET /api/v1/no-such-endpoint 404"
    assert request["request_id"] == "trace-abc.1"
    assert request["status"] == 404 and request["route"] == "unmatched" and request["duration_ms"] >= 0


def test_requests_are_not_logged_one_by_one_in_plain_format():
    assert not logging.getLogger("tollgate.requests").isEnabledFor(logging.INFO)
