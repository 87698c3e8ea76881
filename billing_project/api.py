"""One place that turns every API failure into the error envelope.

DRF's own exceptions (bad JSON, missing key, wrong method, throttling) and our
TollgateError family all leave as `{"error": {...}}` with a stable code, so a
client can branch on `error.code` without parsing prose.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest, JsonResponse
from django.views import defaults
from rest_framework import exceptions as drf
from rest_framework.response import Response

from billing_project.errors import TollgateError

logger = logging.getLogger(__name__)

# DRF exception -> (type, code) in our vocabulary.
_DRF_CODES: dict[type, tuple[str, str]] = {
    drf.NotAuthenticated: ("authentication_failed", "authentication_failed"),
    drf.AuthenticationFailed: ("authentication_failed", "authentication_failed"),
    drf.PermissionDenied: ("permission_denied", "permission_denied"),
    drf.NotFound: ("not_found", "not_found"),
    drf.MethodNotAllowed: ("invalid_request", "method_not_allowed"),
    drf.NotAcceptable: ("invalid_request", "not_acceptable"),
    drf.UnsupportedMediaType: ("invalid_request", "unsupported_media_type"),
    drf.Throttled: ("rate_limited", "rate_limited"),
    drf.ParseError: ("invalid_request", "invalid_json"),
    drf.ValidationError: ("invalid_request", "invalid_request"),
}


def error_body(type_: str, code: str, message: str, **details: Any) -> dict:
    return {"error": {"type": type_, "code": code, "message": message, **details}}


def _flatten(detail: Any) -> Any:
    """DRF ErrorDetail trees -> plain lists/dicts of strings."""
    if isinstance(detail, dict):
        return {str(k): _flatten(v) for k, v in detail.items()}
    if isinstance(detail, list):
        return [_flatten(v) for v in detail]
    return str(detail)


def _first_message(fields: Any) -> str:
    if isinstance(fields, dict):
        for key, value in fields.items():
            inner = _first_message(value)
            return inner if key == "non_field_errors" else f"{key}: {inner}"
    if isinstance(fields, list) and fields:
        return _first_message(fields[0])
    return str(fields)


def error_for(exc: Exception) -> tuple[dict[str, Any], int] | None:
    """The envelope's `error` object for `exc` and its HTTP status, or None for an
    exception that is a bug (a 500). The handler below answers with it; a batch
    answers each refused item with it."""
    if isinstance(exc, TollgateError):
        return exc.as_dict(), exc.status
    if isinstance(exc, Http404):
        exc = drf.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf.PermissionDenied()
    elif isinstance(exc, DjangoValidationError):
        exc = drf.ValidationError(exc.messages)

    if not isinstance(exc, drf.APIException):
        return None

    type_, code = next(
        (codes for cls, codes in _DRF_CODES.items() if isinstance(exc, cls)),
        ("invalid_request", "invalid_request"),
    )
    details: dict[str, Any] = {}
    if isinstance(exc, drf.ValidationError):
        fields = _flatten(exc.detail)
        message = _first_message(fields)
        if isinstance(fields, list):
            fields = {"non_field_errors": fields}
        details["fields"] = fields
    else:
        message = str(exc.detail)
    return {"type": type_, "code": code, "message": message, **details}, exc.status_code


def exception_handler(exc: Exception, context: dict) -> Response | None:
    found = error_for(exc)
    if found is None:
        return None  # a real bug: let Django log it and answer 500 (see server_error)
    error, status = found
    # Only DRF's own exceptions carry these (Http404 and Django's errors never do).
    headers = {}
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
    if isinstance(exc, drf.Throttled) and exc.wait:
        headers["Retry-After"] = str(int(exc.wait))
    return Response({"error": error}, status=status, headers=headers)


# Django-level fallbacks so /api/ never answers HTML, even for an unknown URL
# or an unexpected crash. Pages keep Django's templates.


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def page_not_found(request: HttpRequest, exception: Exception | None = None):
    if _is_api(request):
        return JsonResponse(error_body("not_found", "not_found", "No such endpoint."), status=404)
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest):
    if _is_api(request):
        return JsonResponse(
            error_body("server_error", "server_error", "Something went wrong on our side; it has been logged."),
            status=500,
        )
    return defaults.server_error(request)
