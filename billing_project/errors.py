"""The one error base class. Every expected failure is a TollgateError.

Services raise these; the API exception handler renders them as the error
envelope of DESIGN.md and pages show `message` to the user. An error carries a
stable machine-readable `code`, an HTTP `status` and a `type` grouping codes:

    {"error": {"type": "payment_required", "code": "insufficient_credits",
               "message": "...", "balance": 120, "required": 400, ...}}
"""

from __future__ import annotations

from typing import Any


class TollgateError(Exception):
    status: int = 400
    type: str = "invalid_request"
    code: str = "invalid_request"
    default_message: str = "The request is not valid."

    def __init__(self, message: str | None = None, *, code: str | None = None, **details: Any) -> None:
        self.message = message or self.default_message
        if code:
            self.code = code
        self.details = details
        super().__init__(self.message)

    def as_dict(self) -> dict[str, Any]:
        return {"type": self.type, "code": self.code, "message": self.message, **self.details}


class InvalidRequest(TollgateError):
    pass


class AuthenticationFailed(TollgateError):
    status = 401
    type = "authentication_failed"
    code = "authentication_failed"
    default_message = "A valid API key is required: send `Authorization: Bearer <key>`."


class PermissionDenied(TollgateError):
    status = 403
    type = "permission_denied"
    code = "permission_denied"
    default_message = "You may not do that."


class NotFound(TollgateError):
    status = 404
    type = "not_found"
    code = "not_found"
    default_message = "Not found."


class Conflict(TollgateError):
    status = 409
    type = "conflict"
    code = "conflict"
    default_message = "The request conflicts with the current state."


class PaymentRequired(TollgateError):
    """A refusal for lack of credits or over a spend limit: HTTP 402."""

    status = 402
    type = "payment_required"
    code = "insufficient_credits"
    default_message = "Not enough credits."
