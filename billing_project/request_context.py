"""Who and where a change comes from, for audit records.

The middleware stores the request id and client address in a context
variable, so a service deep in the call stack can stamp its audit row without
every caller threading the request through. Celery tasks and commands have no
request: their audit rows carry the task or command name instead.
"""

from __future__ import annotations

import contextvars
import logging
from dataclasses import dataclass

from django.conf import settings

# Where links point when SITE_URL is unset and no request says otherwise
# (a command, a task started outside `manage.py serve`).
FALLBACK_SITE_URL = "http://localhost:8000"


@dataclass(frozen=True)
class RequestContext:
    request_id: str = ""
    ip: str | None = None
    source: str = ""  # "web", "api", "task:<name>", "command:<name>"
    site_url: str = ""  # scheme and host the request came to, e.g. "http://localhost:8731"


_current: contextvars.ContextVar[RequestContext] = contextvars.ContextVar("tollgate_request", default=RequestContext())


def current() -> RequestContext:
    return _current.get()


def site_url() -> str:
    """The public address for links that leave the service: SITE_URL when set
    (`manage.py serve` sets it for web, worker and beat to the address it
    serves), else the address the current request came to (its host already
    checked against ALLOWED_HOSTS), else port 8000."""
    return settings.SITE_URL or current().site_url or FALLBACK_SITE_URL


def set_current(ctx: RequestContext) -> contextvars.Token:
    return _current.set(ctx)


def reset(token: contextvars.Token) -> None:
    _current.reset(token)


class acting_as:
    """Stamp audit rows written inside with a source, e.g. `command:grant_credits`."""

    def __init__(self, source: str) -> None:
        self.source = source

    def __enter__(self) -> RequestContext:
        ctx = RequestContext(request_id=current().request_id, source=self.source, site_url=current().site_url)
        self._token = set_current(ctx)
        return ctx

    def __exit__(self, *exc) -> None:
        reset(self._token)


class RequestIdLogFilter(logging.Filter):
    """Put the current request's id on every log record (`request_id`, empty
    outside a request), so JSON log lines can be joined to the request that
    logged them and to its `X-Request-Id` answer header."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            # Django logs a 4xx/5xx ("Not Found: ...") after the middleware has
            # returned, with the request on the record: its id is there.
            request = getattr(record, "request", None)
            record.request_id = current().request_id or getattr(request, "request_id", "")
        return True
