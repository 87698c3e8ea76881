"""Reading the usage API's requests: JSON whose numbers are Decimal, never float,
and usage events checked field by field (a batch parses a thousand per request)."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from rest_framework.exceptions import ParseError, ValidationError

from billing_project.api import JSONParser
from usage.services.pricing import UsageInput
from usage.units import AmountError, to_decimal

MAX_METADATA_BYTES = 4096
# Usage may be reported late (a batch flushed after an outage) but not from the future.
MAX_CLOCK_SKEW = timedelta(minutes=5)


class DecimalJSONParser(JSONParser):
    """JSON with every non-integer number parsed as Decimal, never float."""

    json_options = {"parse_float": Decimal}

    def loads(self, text: str) -> Any:
        data = super().loads(text)
        # PostgreSQL stores no NUL character, in text or in jsonb: refuse it here,
        # once for every field, rather than fail at the INSERT.
        if "\\u0000" in text and _has_nul(data):
            raise ParseError("Strings may not contain the NUL character (\\u0000).")
        return data


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def clean_metadata(value: Any) -> dict:
    """Caller metadata as stored: a JSON object of at most MAX_METADATA_BYTES, its
    Decimal numbers as strings (the parser reads them exactly; JSON columns keep text)."""
    if not isinstance(value, dict):
        raise ValidationError("A JSON object.")
    if not value:
        return {}
    text = json.dumps(value, cls=DjangoJSONEncoder)
    if len(text) > MAX_METADATA_BYTES:
        raise ValidationError(f"At most {MAX_METADATA_BYTES} bytes.")
    return json.loads(text)


def request_fingerprint(data: Any) -> str:
    """A hash of a request body, keys sorted: the same request replayed hashes the same."""
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), cls=DjangoJSONEncoder)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _datetime(value: Any, field: str, errors: dict) -> Any:
    try:
        # A well-formed date that cannot exist (minute 60, February 30, offset
        # +25:00) raises rather than returning None.
        parsed = parse_datetime(value) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None:
        errors[field] = ["Send an ISO 8601 date-time that exists, e.g. 2026-11-21T06:13:14Z."]
        return None
    if timezone.is_naive(parsed):
        parsed = parsed.replace(tzinfo=dt_timezone.utc)
    return parsed


def parse_event(data: Any) -> UsageInput:
    """One usage event of the API -> UsageInput, or ValidationError naming each bad field.

    Written out by hand rather than as DRF fields because a batch parses a
    thousand of these per request; `UsageEventSerializer` documents the same shape.
    """
    if not isinstance(data, dict):
        raise ValidationError({"non_field_errors": ["Each event must be a JSON object."]})
    errors: dict[str, list[str]] = {}
    key = data.get("idempotency_key")
    if not isinstance(key, str) or not 1 <= len(key) <= 200:
        errors["idempotency_key"] = ["Required: a string of 1 to 200 characters, unique per event."]
    meter = data.get("meter")
    if not isinstance(meter, str) or not meter:
        errors["meter"] = ["Required: a meter code such as ai.output_tokens."]
    quantity = data.get("quantity")
    try:
        # JSON gives str, int, Decimal (never float: DecimalJSONParser), bool, None,
        # list or dict; to_decimal refuses all but the first three (str(True) is no number).
        quantity = to_decimal(quantity)
        if quantity <= 0:
            errors["quantity"] = ["Must be greater than zero."]
    except AmountError:
        errors["quantity"] = ["Required: a number greater than zero, e.g. 12400 or \"38.5\"."]
    model = data.get("model") or ""
    if not isinstance(model, str) or len(model) > 64:
        errors["model"] = ["A model name of at most 64 characters."]
    member = data.get("member") or ""
    if not isinstance(member, str) or len(member) > 254:
        errors["member"] = ["The member's e-mail address."]
    provider_key_id = data.get("provider_key_id")
    if provider_key_id is not None and (not isinstance(provider_key_id, int) or isinstance(provider_key_id, bool)):
        errors["provider_key_id"] = ["The id of one of your organization's provider keys, as a JSON number (7, not \"7\")."]
    run = data.get("workflow_run_id") or ""
    if not isinstance(run, str) or len(run) > 255:
        errors["workflow_run_id"] = ["A string of at most 255 characters."]
    occurred_at = data.get("occurred_at")
    if occurred_at is not None:
        occurred_at = _datetime(occurred_at, "occurred_at", errors)
        if occurred_at is not None and occurred_at > timezone.now() + MAX_CLOCK_SKEW:
            errors["occurred_at"] = ["Usage cannot occur in the future."]
    hold_id = data.get("hold_id")
    if hold_id is not None and (not isinstance(hold_id, int) or isinstance(hold_id, bool) or hold_id < 1):
        errors["hold_id"] = ["The id of one of your organization's open holds, as a JSON number (12, not \"12\")."]
    metadata = data.get("metadata") or {}
    if not isinstance(metadata, dict):
        errors["metadata"] = ["A JSON object."]
    elif metadata and len(json.dumps(metadata, default=str)) > MAX_METADATA_BYTES:
        errors["metadata"] = [f"At most {MAX_METADATA_BYTES} bytes."]
    if errors:
        raise ValidationError(errors)
    return UsageInput(
        idempotency_key=key, meter=meter, quantity=quantity, model=model, member_email=member,
        provider_key_id=provider_key_id, workflow_run_id=run, occurred_at=occurred_at, metadata=metadata,
        hold_id=hold_id,
    )
