import logging
import re
import time
import uuid

from django.conf import settings
from django.core.exceptions import DisallowedHost

from billing_project import metrics, request_context
from billing_project.api import PayloadTooLarge, error_response, is_api

requests_log = logging.getLogger("tollgate.requests")

_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class RequestContextMiddleware:
    """Give every request an id (the caller's X-Request-Id when it is sane) and
    remember the client address, for audit records and log correlation."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        supplied = request.headers.get("X-Request-Id", "")
        request_id = supplied if _SAFE_REQUEST_ID.match(supplied) else uuid.uuid4().hex
        request.request_id = request_id
        ctx = request_context.RequestContext(
            request_id=request_id,
            ip=request.META.get("REMOTE_ADDR") or None,
            source="api" if request.path.startswith("/api/") else "web",
            site_url=_served_at(request),
        )
        token = request_context.set_current(ctx)
        try:
            response = self.get_response(request)
        finally:
            request_context.reset(token)
        response["X-Request-Id"] = request_id
        return response


def _served_at(request) -> str:
    try:
        return f"{request.scheme}://{request.get_host()}"
    except DisallowedHost:  # Django answers 400 further on; no link is made
        return ""


class APIPayloadLimitMiddleware:
    """Refuse an API request whose declared body is over DATA_UPLOAD_MAX_MEMORY_SIZE
    with 413 in the envelope, before anything reads it. (Django enforces the limit
    only where it reads `request.body` itself, and answers an HTML 400 there.)"""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if limit is not None and is_api(request):
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = 0
            if length > limit:
                return error_response(PayloadTooLarge())
        return self.get_response(request)


class MetricsMiddleware:
    """Time every request and count it by its route's name (`api:usage-events`),
    not its path, so ids in URLs add no series; with LOG_FORMAT=json, also log
    it as one line (logger `tollgate.requests`). First in MIDDLEWARE, to time
    the whole answer; requests no URL pattern matched (static files, unknown
    paths, redirects to HTTPS) count as `unmatched`."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        seconds = time.perf_counter() - started
        match = getattr(request, "resolver_match", None)
        route = match.view_name if match is not None else "unmatched"
        metrics.request_observed(route=route, method=request.method or "", status=response.status_code, seconds=seconds)
        if requests_log.isEnabledFor(logging.INFO):  # off unless LOG_FORMAT=json (settings.LOGGING)
            requests_log.info(
                "%s %s %s", request.method, request.path, response.status_code,
                extra={"request_id": getattr(request, "request_id", ""), "route": route,
                       "status": response.status_code, "duration_ms": round(seconds * 1000, 1)},
            )
        return response
