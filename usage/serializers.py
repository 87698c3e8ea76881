"""Rendering of the usage API, and the shapes its schema documents. Amounts leave
as decimal strings and arrive as strings or JSON numbers parsed straight into
Decimal (usage.parsers): no credit amount or quantity ever passes through a
binary float."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import quote, urlencode

from django.conf import settings
from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.exceptions import ValidationError

from billing_project import request_context
from billing_project.api import iso_z
from usage.models import BillingMode, EntryKind, Hold, HoldStatus, LedgerEntry, Transfer, UsageEvent
from usage.selectors import BalanceSummary, Estimate, Receipt, UsageRow
from usage.parsers import clean_metadata, parse_event
from usage.services.pricing import MAX_BATCH, UsageInput
from usage.units import AmountError, credits_str, credits_to_micros

# --- fields -------------------------------------------------------------------


@extend_schema_field({"type": "string", "format": "decimal", "example": "2.5", "pattern": r"^-?\d{1,13}(\.\d{1,6})?$",
                      "description": "Credits as a decimal string (at most 6 decimal places, at most 10^12); "
                                     "requests may also send a JSON number"})
class CreditsField(serializers.Field):
    """A credit amount: a decimal string (or JSON number) with at most 6 decimals -> micro-credits."""

    default_error_messages = {"invalid": "Send a number of credits such as \"2.5\", with at most 6 decimal places."}

    def __init__(self, *, positive: bool = True, allow_zero: bool = False, **kwargs: Any) -> None:
        self.positive = positive
        self.allow_zero = allow_zero
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, (bool, float)) or not isinstance(data, (str, int, Decimal)):
            self.fail("invalid")
        try:
            micros = credits_to_micros(data)
        except AmountError as error:
            raise ValidationError(str(error)) from None
        if micros < 0 or (micros == 0 and not self.allow_zero):
            raise ValidationError("Must be greater than zero." if not self.allow_zero else "Must be zero or more.")
        return micros

    def to_representation(self, value: int) -> str:
        return credits_str(value)


class UsageEventSerializer(serializers.Serializer):
    """A usage event as the API receives it (parsed by `parse_event`)."""

    idempotency_key = serializers.CharField(max_length=200, help_text="Unique per event; a replay returns the first answer.")
    meter = serializers.CharField(help_text="e.g. ai.output_tokens, compute.seconds, action.medium")
    quantity = serializers.DecimalField(max_digits=30, decimal_places=9, coerce_to_string=True,
                                        help_text="Units of the meter, greater than zero and at most 10^12, at most 9 "
                                                  "decimal places; a decimal string or JSON number.")
    model = serializers.CharField(required=False, allow_blank=True, max_length=64,
                                  help_text="e.g. gpt-5-mini; required by per-model meters.")
    member = serializers.EmailField(required=False, max_length=254,
                                    help_text="E-mail of a member of the organization the usage is attributed to.")
    provider_key_id = serializers.IntegerField(required=False, help_text="One of the org's provider keys: billed compute-only.")
    workflow_run_id = serializers.CharField(required=False, allow_blank=True, max_length=255)
    occurred_at = serializers.DateTimeField(required=False, help_text="Defaults to the time it is recorded; never in "
                                                                     "the future (5 minutes of clock skew allowed).")
    metadata = serializers.DictField(required=False, help_text="A JSON object of at most 4 KB.")
    hold_id = serializers.IntegerField(
        required=False, min_value=1,
        help_text="An open hold of the organization to charge the event against: its reservation pays first and "
                  "shrinks; the part beyond what it has left is checked like any event (402 when the balance "
                  "cannot cover it). 404 hold_not_found for an unknown or another organization's hold; 409 "
                  "hold_not_open when it was captured, released or has expired.",
    )

    def to_internal_value(self, data: Any) -> UsageInput:
        return parse_event(data)


class UsageBatchSerializer(serializers.Serializer):
    events = serializers.ListField(
        child=UsageEventSerializer(), min_length=1, max_length=MAX_BATCH,
        help_text=f"1 to {MAX_BATCH} events; each is decided and answered on its own.",
    )

    def to_internal_value(self, data: Any) -> list[Any]:
        """The raw events: each is parsed on its own so one bad event is one refused result."""
        if not isinstance(data, dict) or not isinstance(data.get("events"), list):
            raise ValidationError({"events": ["Required: a list of 1 to 1,000 usage events."]})
        events = data["events"]
        if not 1 <= len(events) <= MAX_BATCH:
            raise ValidationError({"events": [f"Send 1 to {MAX_BATCH} events per batch."]})
        return events


# --- responses ------------------------------------------------------------------


def event_data(event: UsageEvent) -> dict[str, Any]:
    # Usage a member paid for (member_usage: personal) moved their personal
    # balance, which the organization does not see.
    routed = event.for_org_id is not None
    return {
        "id": event.pk,
        "idempotency_key": event.idempotency_key,
        "meter": event.meter.code,
        "model": event.model,
        "quantity": format(event.quantity.normalize(), "f"),
        "credits_per_unit": format(event.credits_per_unit.normalize(), "f"),
        "credits_charged": credits_str(event.credits_micros),
        "billing_mode": event.billing_mode,
        "provider_key_id": event.provider_key_id,
        "member": event.member.email if event.member_id else None,
        "workflow_run_id": event.workflow_run_id,
        "hold_id": event.hold_id,
        "spending_token_id": event.spending_token_id,
        "ledger_entry_id": event.ledger_entry_id,
        "occurred_at": iso_z(event.occurred_at),
        "balance_after": None if routed else credits_str(event.balance_after_micros),
        "paid_by": "member" if routed else "organization",
        "metadata": event.metadata,
    }


class UsageEventResultSerializer(serializers.Serializer):
    """Documentation of `event_data`."""

    id = serializers.IntegerField()
    idempotency_key = serializers.CharField()
    meter = serializers.CharField()
    model = serializers.CharField()
    quantity = serializers.CharField(help_text="Decimal string")
    credits_per_unit = serializers.CharField(help_text="Decimal string: the rate applied")
    credits_charged = serializers.CharField(help_text="Decimal string, rounded half up to 0.000001")
    billing_mode = serializers.ChoiceField(choices=BillingMode.choices)
    provider_key_id = serializers.IntegerField(allow_null=True)
    member = serializers.EmailField(allow_null=True)
    workflow_run_id = serializers.CharField()
    hold_id = serializers.IntegerField(allow_null=True)
    spending_token_id = serializers.IntegerField(allow_null=True, help_text="The spending token that recorded it, if one did")
    ledger_entry_id = serializers.IntegerField(allow_null=True)
    occurred_at = serializers.DateTimeField()
    balance_after = serializers.CharField(
        allow_null=True, help_text="Decimal string: the balance right after this event; null when the member paid",
    )
    paid_by = serializers.ChoiceField(
        choices=["organization", "member"],
        help_text="Whose balance paid: the organization's, or the member's personal one (member_usage: personal)",
    )
    metadata = serializers.DictField()


class ErrorSerializer(serializers.Serializer):
    type = serializers.CharField()
    code = serializers.CharField()
    message = serializers.CharField()
    status = serializers.IntegerField(help_text="The HTTP status the event would have had alone.")
    fields = serializers.DictField(required=False, help_text="invalid_request: the messages for each field.")


class BatchResultSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    idempotency_key = serializers.CharField(allow_null=True)
    status = serializers.ChoiceField(choices=["recorded", "replayed", "refused"])
    event = UsageEventResultSerializer(allow_null=True)
    error = ErrorSerializer(allow_null=True, help_text="The error envelope's body, with `status` (HTTP status it would have had).")


class BatchResponseSerializer(serializers.Serializer):
    recorded = serializers.IntegerField()
    replayed = serializers.IntegerField()
    refused = serializers.IntegerField()
    results = BatchResultSerializer(many=True)


class GrantBalanceSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    source = serializers.CharField()
    remaining = CreditsField(source="remaining_micros")
    expires_at = serializers.DateTimeField(allow_null=True)


class BalanceSerializer(serializers.Serializer):
    balance = CreditsField(source="balance_micros", positive=False)
    available = CreditsField(source="available_micros", positive=False)
    held = CreditsField(source="held_micros")
    debt = CreditsField(source="debt_micros")
    status = serializers.ChoiceField(choices=["ok", "low", "depleted"])
    plan = serializers.CharField(source="plan_code")
    overage_allowed = serializers.BooleanField()
    grants = GrantBalanceSerializer(many=True)


def balance_data(summary: BalanceSummary) -> dict[str, Any]:
    """`BalanceSerializer`'s shape, built directly: this is the hottest read."""
    return {
        "balance": credits_str(summary.balance_micros),
        "available": credits_str(summary.available_micros),
        "held": credits_str(summary.held_micros),
        "debt": credits_str(summary.debt_micros),
        "status": summary.status,
        "plan": summary.plan_code,
        "overage_allowed": summary.overage_allowed,
        "grants": [
            {"id": g.id, "source": g.source, "remaining": credits_str(g.remaining_micros),
             "expires_at": iso_z(g.expires_at)}
            for g in summary.grants
        ],
    }


class HoldCreateSerializer(serializers.Serializer):
    idempotency_key = serializers.CharField(max_length=200)
    credits = CreditsField(help_text="Credits to reserve, a decimal string.")
    expires_in = serializers.IntegerField(min_value=1, max_value=86400, default=900, help_text="Seconds (default 900).")
    member = serializers.EmailField(required=False)
    workflow_run_id = serializers.CharField(required=False, allow_blank=True, max_length=255, default="")
    metadata = serializers.DictField(required=False, default=dict, help_text="A JSON object of at most 4 KB.")
    meters = serializers.ListField(
        child=serializers.CharField(max_length=64), required=False, default=list, max_length=50,
        help_text="The meters the run will record. One that needs a plan feature the org lacks refuses the hold "
                  "(403 feature_not_in_plan); an unknown one is 400 unknown_meter.",
    )
    parent_hold_id = serializers.IntegerField(
        required=False, min_value=1,
        help_text="Carve this hold out of an open hold's reservation (for a sub-agent): nothing more is reserved "
                  "from the balance, and the child never spends past what it and its parents have left. 409 "
                  "parent_hold_insufficient, hold_not_open, hold_depth_exceeded, hold_children_exceeded; 404 "
                  "hold_not_found.",
    )

    def validate_metadata(self, value: dict) -> dict:
        return clean_metadata(value)


class HoldSerializer(serializers.ModelSerializer):
    credits = CreditsField(source="amount_micros", help_text="Credits reserved when the hold was made.")
    used = CreditsField(source="used_micros", allow_zero=True,
                        help_text="The part of the reservation spent by usage recorded against the hold "
                                  "or carved into its child holds.")
    recorded = CreditsField(source="recorded_micros", allow_zero=True,
                            help_text="Every credit of usage recorded against the hold (beyond the reservation too).")
    parent_hold_id = serializers.IntegerField(source="parent_id", allow_null=True, read_only=True,
                                              help_text="The hold it was carved out of, or null.")
    prices_locked = serializers.SerializerMethodField(
        help_text="A quote's hold (or its child): usage against it is priced at the rates of the quote.")
    left = serializers.SerializerMethodField(help_text="What the hold still reserves: credits - used while open, "
                                                       "0 once it is closed.")
    captured = serializers.SerializerMethodField()
    member = serializers.SerializerMethodField()
    paid_by = serializers.SerializerMethodField(
        help_text="Whose balance the hold reserves: the organization's, or the member's personal one "
                  "(member_usage: personal)",
    )

    class Meta:
        model = Hold
        fields = ["id", "idempotency_key", "status", "credits", "used", "recorded", "left", "captured", "member",
                  "paid_by", "parent_hold_id", "depth", "prices_locked", "workflow_run_id", "expires_at", "created_at",
                  "closed_at", "metadata"]

    def get_paid_by(self, hold: Hold) -> str:
        return "member" if hold.for_org_id is not None else "organization"

    def get_prices_locked(self, hold: Hold) -> bool:
        return hold.locked_rates is not None

    @extend_schema_field({"type": "string", "format": "decimal", "example": "12.5"})
    def get_left(self, hold: Hold) -> str:
        return credits_str(hold.left_micros if hold.status == HoldStatus.OPEN else 0)

    def get_captured(self, hold: Hold) -> str | None:
        return credits_str(hold.captured_micros) if hold.captured_micros is not None else None

    def get_member(self, hold: Hold) -> str | None:
        return hold.member.email if hold.member_id else None


class HoldCaptureSerializer(serializers.Serializer):
    credits = CreditsField(
        required=False, allow_zero=True,
        help_text="What the run used in all, usage recorded against the hold included (at least that: else 409 "
                  "capture_below_recorded). Send `credits`, `events`, or neither: what was recorded against it.",
    )
    events = serializers.ListField(child=UsageEventSerializer(), required=False, min_length=1, max_length=MAX_BATCH,
                                   help_text="The usage events the run was made of besides those recorded against "
                                             "the hold; their total is captured on top of what was recorded.")

    def validate(self, attrs: dict) -> dict:
        if "credits" in attrs and "events" in attrs:
            raise ValidationError({"non_field_errors": ["Send either `credits` or `events`, not both."]})
        return attrs


class HoldCaptureResponseSerializer(serializers.Serializer):
    hold = HoldSerializer()
    events = UsageEventResultSerializer(many=True)
    balance_after = serializers.CharField()


class EstimateItemSerializer(serializers.Serializer):
    meter = serializers.CharField()
    model = serializers.CharField(required=False, allow_blank=True, default="")
    quantity = serializers.DecimalField(max_digits=30, decimal_places=9, required=False, min_value=Decimal(0))
    low = serializers.DecimalField(max_digits=30, decimal_places=9, required=False, min_value=Decimal(0))
    high = serializers.DecimalField(max_digits=30, decimal_places=9, required=False, min_value=Decimal(0))

    def validate(self, attrs: dict) -> dict:
        if "quantity" not in attrs and not ("low" in attrs and "high" in attrs):
            raise ValidationError({"quantity": ["Send `quantity`, or `low` and `high`."]})
        return attrs


class EstimateRequestSerializer(serializers.Serializer):
    workflow = serializers.ChoiceField(choices=["tweet", "thread", "carousel", "story", "video"], required=False)
    items = EstimateItemSerializer(many=True, required=False)
    billing_mode = serializers.ChoiceField(choices=BillingMode.choices, default=BillingMode.PLATFORM_KEY)
    reserve = serializers.BooleanField(
        default=False,
        help_text="Also hold the upper bound (a quote): usage recorded or captured against the hold is priced at "
                  "today's rates, even if the rate card changes during the run. Needs `idempotency_key`.",
    )
    idempotency_key = serializers.CharField(max_length=200, required=False,
                                            help_text="With `reserve`: unique per quote; a replay answers the first.")
    expires_in = serializers.IntegerField(min_value=1, max_value=86400, default=900,
                                          help_text="With `reserve`: the hold's lifetime in seconds (default 900).")
    member = serializers.EmailField(required=False, help_text="With `reserve`: the member the run is for.")
    workflow_run_id = serializers.CharField(required=False, allow_blank=True, max_length=255, default="")

    def validate(self, attrs: dict) -> dict:
        if ("workflow" in attrs) == ("items" in attrs) or attrs.get("items") == []:
            raise ValidationError({"non_field_errors": ["Send either `workflow` or a non-empty `items` list."]})
        if attrs["reserve"] and not attrs.get("idempotency_key"):
            raise ValidationError({"idempotency_key": ["Required with `reserve`: unique per quote."]})
        return attrs


def estimate_data(estimate: Estimate) -> dict[str, Any]:
    return {
        "workflow": estimate.workflow,
        "credits": {"low": credits_str(estimate.low_micros), "high": credits_str(estimate.high_micros)},
        "money": {"currency": settings.CURRENCY.lower(), "low": str(estimate.usd(estimate.low_micros)),
                  "high": str(estimate.usd(estimate.high_micros))},
        "usd_per_credit": str(estimate.usd_per_credit),
        "items": [
            {"meter": line.meter, "model": line.model, "low": format(line.low.normalize(), "f"),
             "high": format(line.high.normalize(), "f"), "credits_per_unit": format(line.credits_per_unit.normalize(), "f"),
             "credits_low": credits_str(line.low_micros), "credits_high": credits_str(line.high_micros)}
            for line in estimate.lines
        ],
    }


class RangeSerializer(serializers.Serializer):
    low = serializers.CharField()
    high = serializers.CharField()


class MoneyRangeSerializer(RangeSerializer):
    currency = serializers.CharField()


class EstimateResponseSerializer(serializers.Serializer):
    workflow = serializers.CharField(allow_null=True)
    credits = RangeSerializer()
    money = MoneyRangeSerializer()
    usd_per_credit = serializers.CharField()
    items = serializers.ListField(child=serializers.DictField())


class QuoteResponseSerializer(EstimateResponseSerializer):
    hold = HoldSerializer(help_text="The hold of the estimate's upper bound, its prices locked.")


class LedgerEntrySerializer(serializers.ModelSerializer):
    amount = CreditsField(source="amount_micros", positive=False)
    balance_after = CreditsField(source="balance_after_micros", positive=False)

    class Meta:
        model = LedgerEntry
        fields = ["id", "kind", "amount", "balance_after", "reason", "idempotency_key", "grant", "hold", "transfer",
                  "stripe_object_id", "created_at"]


class LedgerQuerySerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=EntryKind.choices, required=False)
    since = serializers.DateTimeField(required=False)
    until = serializers.DateTimeField(required=False)


class UsageSummaryQuerySerializer(serializers.Serializer):
    period = serializers.ChoiceField(choices=["day", "week", "month"], default="day")
    group_by = serializers.ChoiceField(choices=["meter", "model", "member", "workflow_run"], default="meter")
    since = serializers.DateTimeField(required=False, help_text="Default: 30 days before `until`; before `until`, "
                                                                "at most 800 days before it.")
    until = serializers.DateTimeField(required=False, help_text="Default: now.")

    def validate(self, attrs: dict) -> dict:
        since = attrs.get("since") or timezone.now() - timedelta(days=30)
        until = attrs.get("until") or timezone.now()
        if since >= until:
            raise ValidationError({"since": ["Must be before `until`."]})
        if until - since > timedelta(days=800):
            raise ValidationError({"since": ["Ask for at most 800 days at a time."]})
        return {**attrs, "since": since, "until": until}


class UsageRowSerializer(serializers.Serializer):
    period_start = serializers.DateTimeField()
    key = serializers.CharField(allow_null=True, help_text="The group's meter, model, member e-mail or run id; null when the "
                                                          "events have none (no member, no run).")
    meter = serializers.CharField(help_text="The meter the quantity counts: quantities are only added within a meter.")
    quantity = serializers.SerializerMethodField(help_text="Decimal string, in the meter's unit.")
    credits = CreditsField(source="credits_micros", allow_zero=True)
    events = serializers.IntegerField()

    def get_quantity(self, row: UsageRow) -> str:
        return format(row.quantity.normalize(), "f")


class UsageSummarySerializer(serializers.Serializer):
    """Documentation of the summary's answer."""

    period = serializers.ChoiceField(choices=["day", "week", "month"])
    group_by = serializers.ChoiceField(choices=["meter", "model", "member", "workflow_run"])
    since = serializers.DateTimeField()
    until = serializers.DateTimeField()
    rows = UsageRowSerializer(many=True)


class TransferCreateSerializer(serializers.Serializer):
    idempotency_key = serializers.CharField(max_length=200)
    to_org = serializers.SlugField(help_text="The receiving organization's slug.")
    credits = CreditsField()
    note = serializers.CharField(required=False, allow_blank=True, max_length=280, default="")


class TransferSerializer(serializers.ModelSerializer):
    credits = CreditsField(source="amount_micros")
    from_org = serializers.SlugField(source="from_account.org.slug")
    to_org = serializers.SlugField(source="to_account.org.slug")

    class Meta:
        model = Transfer
        fields = ["id", "idempotency_key", "from_org", "to_org", "credits", "note", "created_at"]


class ProviderKeyCreateSerializer(serializers.Serializer):
    provider = serializers.ChoiceField(choices=["openai", "anthropic", "google", "other"])
    label = serializers.CharField(max_length=100)
    last_four = serializers.CharField(min_length=4, max_length=4, help_text="Only the last four characters, never the key.")


class ProviderKeySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    provider = serializers.CharField()
    label = serializers.CharField()
    last_four = serializers.CharField()
    created_at = serializers.DateTimeField()
    revoked_at = serializers.DateTimeField(allow_null=True)


class PausableApiKeySerializer(serializers.Serializer):
    """An API key as the runaway breaker sees it: paused or not."""

    prefix = serializers.CharField()
    name = serializers.CharField()
    paused = serializers.SerializerMethodField()
    paused_at = serializers.DateTimeField(allow_null=True)
    paused_reason = serializers.CharField(allow_blank=True)
    monthly_limit = serializers.SerializerMethodField(
        help_text="The most it may spend a calendar month (UTC), in credits; null: no limit.")
    meters = serializers.ListField(child=serializers.CharField(), help_text="Meters it may record; empty: every meter.")

    def get_paused(self, key) -> bool:
        return key.paused_at is not None

    def get_monthly_limit(self, key) -> str | None:
        return credits_str(key.monthly_limit_micros) if key.monthly_limit_micros is not None else None


# --- run receipts -------------------------------------------------------------------


def _decimal(value: Decimal) -> str:
    return format(value.normalize(), "f")


# The receipt page (billing.urls "billing:run_receipt"); `?org=` makes the
# run's organization the current one for a person who belongs to it.
RECEIPT_PATH = "/billing/usage/runs/{run_id}/"


def receipt_url(receipt: Receipt) -> str:
    path = RECEIPT_PATH.format(run_id=quote(receipt.run_id, safe=""))
    return request_context.site_url() + path + "?" + urlencode({"org": receipt.org_slug})


def receipt_data(receipt: Receipt) -> dict[str, Any]:
    """GET /api/v1/runs/{id}: the run's lines, holds, spending tokens and totals.
    Whose balance paid is named (`paid_by`), never a member's balance."""
    return {
        "workflow_run_id": receipt.run_id,
        "receipt_url": receipt_url(receipt),
        "first_at": iso_z(receipt.first_at),
        "last_at": iso_z(receipt.last_at),
        "totals": {
            "credits": credits_str(receipt.total_micros),
            "events": receipt.line_count,
            "events_credits": credits_str(receipt.events_micros),
            "captured_without_events": credits_str(receipt.unitemised_micros),
            "paid_by_organization": credits_str(receipt.paid_by_org_micros),
            "paid_by_members": credits_str(receipt.paid_by_members_micros),
            "money": {"currency": receipt.currency, "amount": str(receipt.total_money),
                      "credit_price": _decimal(receipt.credit_price)},
        },
        "by_meter": [
            {"meter": m.meter, "name": m.meter_name, "unit": m.unit, "quantity": _decimal(m.quantity),
             "credits": credits_str(m.credits_micros), "events": m.events}
            for m in receipt.by_meter
        ],
        "lines": [
            {"event_id": line.event_id, "occurred_at": iso_z(line.occurred_at), "meter": line.meter,
             "model": line.model, "quantity": _decimal(line.quantity),
             "credits_per_unit": _decimal(line.credits_per_unit), "credits": credits_str(line.credits_micros),
             "billing_mode": line.billing_mode, "member": line.member_email, "paid_by": line.paid_by,
             "hold_id": line.hold_id, "spending_token": line.spending_token,
             "idempotency_key": line.idempotency_key}
            for line in receipt.lines
        ],
        "lines_truncated": receipt.truncated,
        "holds": [
            {"id": h.hold_id, "parent_id": h.parent_id, "workflow_run_id": h.run_id, "status": h.status,
             "reserved": credits_str(h.reserved_micros),
             "captured": credits_str(h.captured_micros) if h.captured_micros is not None else None,
             "captured_without_events": credits_str(h.unitemised_micros), "prices_locked": h.prices_locked,
             "events": h.events, "other_run_events": h.other_run_events,
             "member": h.member_email, "paid_by": h.paid_by, "created_at": iso_z(h.created_at),
             "closed_at": iso_z(h.closed_at), "expires_at": iso_z(h.expires_at)}
            for h in receipt.holds
        ],
        "tokens": [
            {"prefix": t.prefix, "name": t.name, "hold_id": t.hold_id, "credits": credits_str(t.ceiling_micros),
             "spent": credits_str(t.spent_micros), "status": t.status, "expires_at": iso_z(t.expires_at),
             "events": t.events, "events_credits": credits_str(t.events_micros)}
            for t in receipt.tokens
        ],
    }


_PAID_BY = serializers.ChoiceField(
    choices=["organization", "member"],
    help_text="Whose balance paid: the organization's, or the member's personal one (member_usage: personal)",
)


class ReceiptMoneySerializer(serializers.Serializer):
    currency = serializers.CharField()
    amount = serializers.CharField(help_text="The total at the list price of a credit, rounded half up to the cent")
    credit_price = serializers.CharField(help_text="The list price of one credit (CREDIT_PRICE)")


class ReceiptTotalsSerializer(serializers.Serializer):
    credits = serializers.CharField(help_text="What the run cost, as the ledger debited it: its events, and what "
                                              "its holds captured beyond their events")
    events = serializers.IntegerField(help_text="Every usage event of the run (the lines stop at 1,000)")
    events_credits = serializers.CharField()
    captured_without_events = serializers.CharField(
        help_text="What the run's holds captured by amount beyond the usage events recorded against them, which "
                  "no usage event itemises")
    paid_by_organization = serializers.CharField()
    paid_by_members = serializers.CharField(help_text="Paid from members' personal balances: a total, never a balance")
    money = ReceiptMoneySerializer()


class ReceiptMeterSerializer(serializers.Serializer):
    meter = serializers.CharField()
    name = serializers.CharField()
    unit = serializers.CharField()
    quantity = serializers.CharField()
    credits = serializers.CharField()
    events = serializers.IntegerField()


class ReceiptLineSerializer(serializers.Serializer):
    event_id = serializers.IntegerField()
    occurred_at = serializers.DateTimeField()
    meter = serializers.CharField()
    model = serializers.CharField()
    quantity = serializers.CharField()
    credits_per_unit = serializers.CharField()
    credits = serializers.CharField()
    billing_mode = serializers.ChoiceField(choices=BillingMode.choices)
    member = serializers.EmailField(allow_null=True)
    paid_by = _PAID_BY
    hold_id = serializers.IntegerField(allow_null=True, help_text="The hold it was charged against")
    spending_token = serializers.CharField(allow_null=True, help_text="The prefix of the spending token that "
                                                                      "recorded it")
    idempotency_key = serializers.CharField()


class ReceiptHoldSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    parent_id = serializers.IntegerField(allow_null=True, help_text="The hold it was carved out of (a child hold)")
    workflow_run_id = serializers.CharField(allow_blank=True, help_text="The run it was reserved for: this one, "
                                            "another (a hold this run's events named, or a child for another run), "
                                            "or none")
    status = serializers.ChoiceField(choices=["open", "captured", "released", "expired"])
    reserved = serializers.CharField()
    captured = serializers.CharField(allow_null=True)
    captured_without_events = serializers.CharField(
        help_text="What it captured beyond the usage events charged through it (and its children's closing), "
                  "counted in this run's total; 0 when that belongs to another run")
    prices_locked = serializers.BooleanField(help_text="A quote's hold: usage priced at the quoted rates")
    events = serializers.IntegerField(help_text="The run's events charged through it")
    other_run_events = serializers.IntegerField(help_text="Events of other runs charged through it (in their "
                                                          "receipts)")
    member = serializers.EmailField(allow_null=True)
    paid_by = _PAID_BY
    created_at = serializers.DateTimeField()
    closed_at = serializers.DateTimeField(allow_null=True)
    expires_at = serializers.DateTimeField()


class ReceiptTokenSerializer(serializers.Serializer):
    prefix = serializers.CharField(help_text="`tgs_` and 8 characters: the visible part of the token")
    name = serializers.CharField(allow_blank=True)
    hold_id = serializers.IntegerField(help_text="The hold it was issued for")
    credits = serializers.CharField(help_text="Its ceiling")
    spent = serializers.CharField(help_text="What all its events cost, this run's and any other's")
    status = serializers.ChoiceField(choices=["active", "revoked", "expired", "hold_closed"])
    expires_at = serializers.DateTimeField()
    events = serializers.IntegerField(help_text="The run's events it recorded")
    events_credits = serializers.CharField()


class ReceiptSerializer(serializers.Serializer):
    """Documentation of `receipt_data`."""

    workflow_run_id = serializers.CharField()
    receipt_url = serializers.URLField(help_text="The receipt's page, for people of the organization")
    first_at = serializers.DateTimeField(allow_null=True)
    last_at = serializers.DateTimeField(allow_null=True)
    totals = ReceiptTotalsSerializer()
    by_meter = ReceiptMeterSerializer(many=True)
    lines = ReceiptLineSerializer(many=True, help_text="The run's usage events, oldest first, at most 1,000")
    lines_truncated = serializers.BooleanField()
    holds = ReceiptHoldSerializer(many=True)
    tokens = ReceiptTokenSerializer(many=True, help_text="The spending tokens that recorded the run's events")


# --- spending tokens ------------------------------------------------------------------


class SpendingTokenCreateSerializer(serializers.Serializer):
    credits = CreditsField(required=False, help_text="The most the token may record in all, a decimal string "
                                                     "(default: the hold's amount).")
    meters = serializers.ListField(
        child=serializers.CharField(max_length=64), required=False, default=list, max_length=50,
        help_text="The meters it may record (default: every meter the issuing key may record); an unknown one is "
                  "400 unknown_meter, one outside the issuing key's list 403 meter_not_allowed.",
    )
    expires_in = serializers.IntegerField(min_value=1, max_value=86400, default=900,
                                          help_text="Seconds (default 900, at most 86400); never past the hold's expiry.")
    name = serializers.CharField(required=False, allow_blank=True, max_length=50, default="",
                                 help_text="A label for lists, such as the tool that holds it.")


class SpendingTokenSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    prefix = serializers.CharField(help_text="`tgs_` and 8 characters: the visible part of the token.")
    name = serializers.CharField(allow_blank=True)
    hold_id = serializers.IntegerField()
    credits = CreditsField(source="ceiling_micros", help_text="Its ceiling: the most it may record in all.")
    spent = CreditsField(source="spent_micros", allow_zero=True, help_text="What its usage events cost so far.")
    remaining = CreditsField(source="remaining_micros", allow_zero=True)
    meters = serializers.ListField(child=serializers.CharField(), help_text="Meters it may record; empty: every meter "
                                                                            "its key may record.")
    status = serializers.SerializerMethodField(help_text="active, revoked, expired, or hold_closed (its hold was "
                                                         "captured, released or expired)")
    api_key_prefix = serializers.SerializerMethodField(help_text="The API key that issued it.")
    expires_at = serializers.DateTimeField()
    created_at = serializers.DateTimeField()
    revoked_at = serializers.DateTimeField(allow_null=True)

    def get_status(self, token) -> str:
        return token.status_with_hold_at(timezone.now())

    def get_api_key_prefix(self, token) -> str | None:
        return token.api_key.prefix if token.api_key_id else None


class SpendingTokenCreatedSerializer(SpendingTokenSerializer):
    token = serializers.CharField(help_text="The secret, `tgs_<prefix>.<secret>`: shown this once, never again.")
