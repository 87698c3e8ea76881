"""The OpenAPI schema says what the API really answers: every error status an
operation can give, each with the one error envelope as its body.

A drf-spectacular postprocessing hook, so no view has to repeat the statuses
every API view shares (401 and 403 from the key check, 429 from the throttle,
400/413/415 from reading a body or a query, 404 for an id in the path). Views
still name the errors of their own (402, 409, 503) with what they mean.
"""

from __future__ import annotations

from typing import Any

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["type", "code", "message"],
            "properties": {
                "type": {"type": "string", "example": "invalid_request"},
                "code": {"type": "string", "example": "invalid_request",
                         "description": "Stable and machine-readable: branch on this."},
                "message": {"type": "string", "description": "For people."},
                "fields": {"type": "object", "additionalProperties": True,
                           "description": "400 invalid_request: the messages for each field."},
            },
            "additionalProperties": True,
        },
    },
}
ERROR_REF = {"$ref": "#/components/schemas/ErrorEnvelope"}

_SHARED = {
    "401": "authentication_failed: a missing, malformed, unknown, revoked or expired key",
    "403": "permission_denied: the key lacks the scope",
    "429": "rate_limited: too many requests for this key; see Retry-After",
}
_READS_INPUT = {"400": "invalid_request (with `fields`) or invalid_json"}
_READS_BODY = {
    "413": "payload_too_large: the body is over the size this API accepts",
    "415": "unsupported_media_type: send Content-Type: application/json",
}
_NAMES_AN_ID = {"404": "not_found: no such object in this organization"}
_METHODS = ("get", "put", "post", "patch", "delete")


def _expected(path: str, operation: dict) -> dict[str, str]:
    expected = dict(_SHARED)  # every /api/v1/ operation checks a key, its scope and its rate
    if operation.get("requestBody") or operation.get("parameters"):
        expected.update(_READS_INPUT)
    if operation.get("requestBody"):
        expected.update(_READS_BODY)
    if "{" in path:
        expected.update(_NAMES_AN_ID)
    return expected


def add_error_responses(result: dict, generator: Any, request: Any, public: bool) -> dict:
    """SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"]: every error of every API
    operation documented, with the envelope as its body."""
    result.setdefault("components", {}).setdefault("schemas", {})["ErrorEnvelope"] = ERROR_SCHEMA
    for path, item in result.get("paths", {}).items():
        if not path.startswith("/api/v1/"):
            continue
        for method in _METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            responses = operation.setdefault("responses", {})
            for status, description in _expected(path, operation).items():
                responses.setdefault(status, {"description": description})
            for status, response in responses.items():
                if status[0] in "45":
                    response.setdefault("content", {"application/json": {"schema": ERROR_REF}})
    return result
