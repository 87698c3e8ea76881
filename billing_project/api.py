"""One place that turns every API failure into the error envelope.

DRF's own exceptions (bad JSON, missing key, wrong method, throttling) and our
TollgateError family all leave as `{"error": {...}}` with a stable code, so a
client can branch on `error.code` without parsing prose.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest, JsonResponse
from django.views import defaults
from rest_framework import exceptions as drf
from rest_framework import parsers
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from billing_project import metrics
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


class PayloadTooLarge(TollgateError):
    status = 413
    type = "invalid_request"
    code = "payload_too_large"

    def __init__(self) -> None:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        super().__init__(f"The request body is larger than the {limit:,} bytes this API accepts.", limit_bytes=limit)


# --- writing JSON --------------------------------------------------------------------


def iso_z(value) -> str | None:
    """A datetime as the API writes it: ISO 8601 in UTC with a Z (None stays None)."""
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


# --- reading JSON ---------------------------------------------------------------------

# No request of this API nests deeper than a few levels; metadata may nest a
# little more. Far deeper JSON is an attack on the parser's recursion, and what
# parses would still exhaust every recursive step after it (validation, hashing).
MAX_JSON_DEPTH = 32


def _too_deep(value: Any, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:  # iterative: the point is not to recurse
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > limit:
                return True
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return False


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a number JSON allows")


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser that also refuses, as `invalid_json`, JSON nested deeper
    than MAX_JSON_DEPTH and JSON so deep that Python's decoder gives up."""

    json_options: dict[str, Any] = {}

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = parsers.get_encoding(parser_context or {})  # text encodings only, never bz2_codec
        try:
            text = stream.read().decode(encoding)
        except UnicodeDecodeError as exc:
            raise drf.ParseError(f"JSON parse error - {exc}") from None
        return self.loads(text)

    def loads(self, text: str) -> Any:
        try:
            data = json.loads(text, parse_constant=_refuse_constant, **self.json_options)
        except RecursionError:
            data = None
            too_deep = True
        except ValueError as exc:
            raise drf.ParseError(f"JSON parse error - {exc}") from None
        else:
            too_deep = _too_deep(data, MAX_JSON_DEPTH)
        if too_deep:
            raise drf.ParseError(f"JSON may nest at most {MAX_JSON_DEPTH} levels deep.")
        return data


# --- the envelope ---------------------------------------------------------------------


def error_body(type_: str, code: str, message: str, **details: Any) -> dict:
    return {"error": {"type": type_, "code": code, "message": message, **details}}


def _fallback(type_: str, code: str, message: str, status: int) -> JsonResponse:
    """An envelope Django's own handlers answer for /api/ (counted like the others)."""
    metrics.api_error_counted(status=status, code=code)
    return JsonResponse(error_body(type_, code, message), status=status)


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
    answers each refused item with it. Each refusal is counted once, here
    (`tollgate_api_errors_total`, by status and code)."""
    found = _error_for(exc)
    if found is not None:
        metrics.api_error_counted(status=found[1], code=found[0]["code"])
    return found


def _error_for(exc: Exception) -> tuple[dict[str, Any], int] | None:
    if isinstance(exc, RequestDataTooBig):
        exc = PayloadTooLarge()
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
    # Errors are JSON whatever the view renders otherwise (the schema view's YAML).
    request = context.get("request")
    if request is not None:
        request.accepted_renderer, request.accepted_media_type = JSONRenderer(), "application/json"
    return Response({"error": error}, status=status, headers=headers)


# Django-level fallbacks so /api/ never answers HTML, even for an unknown URL,
# a refusal Django makes before any view runs (a disallowed host, a body over
# DATA_UPLOAD_MAX_MEMORY_SIZE) or an unexpected crash. Pages keep Django's templates.


def is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def error_response(exc: TollgateError) -> JsonResponse:
    metrics.api_error_counted(status=exc.status, code=exc.code)
    return JsonResponse({"error": exc.as_dict()}, status=exc.status)


def bad_request(request: HttpRequest, exception: Exception | None = None):
    if is_api(request):
        if isinstance(exception, RequestDataTooBig):
            return error_response(PayloadTooLarge())
        message = "The request was refused." if isinstance(exception, SuspiciousOperation) else "Bad request."
        return _fallback("invalid_request", "invalid_request", message, 400)
    return defaults.bad_request(request, exception)


def permission_denied(request: HttpRequest, exception: Exception | None = None):
    if is_api(request):
        return _fallback("permission_denied", "permission_denied", "You may not do that.", 403)
    return defaults.permission_denied(request, exception)


def page_not_found(request: HttpRequest, exception: Exception | None = None):
    if is_api(request):
        return _fallback("not_found", "not_found", "No such endpoint.", 404)
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest):
    if is_api(request):
        return _fallback("server_error", "server_error", "Something went wrong on our side; it has been logged.", 500)
    return defaults.server_error(request)
