"""JSON Schemas of the tools' inputs and outputs (what tools/list shows).

Amounts are decimal strings, as on the REST API, so no client rounds them
through a float. The shapes are the REST answers' (docs/api.md); the SDK's
client validates each result against its output schema.
"""

from __future__ import annotations

from typing import Any

CREDITS = {"type": "string", "description": "Credits as a decimal string, e.g. \"2.5\"."}
CREDITS_IN = {"type": ["string", "number"], "description": "Credits as a decimal string (at most 6 decimal places), e.g. \"50\"."}
QUANTITY_IN = {"type": ["string", "number"], "description": "Units of the meter, a decimal string or number."}
STR = {"type": "string"}
NSTR = {"type": ["string", "null"]}
INT = {"type": "integer"}
NINT = {"type": ["integer", "null"]}
BOOL = {"type": "boolean"}
WHEN = {"type": "string", "description": "ISO 8601 date and time (UTC)."}
NWHEN = {"type": ["string", "null"], "description": "ISO 8601 date and time (UTC), or null."}


def obj(properties: dict[str, Any], required: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties, **extra}
    if required:
        schema["required"] = required
    return schema


def array(items: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": "array", "items": items, **extra}


EMPTY_INPUT = obj({}, additionalProperties=False)

GRANT = obj({"id": INT, "source": STR, "remaining": CREDITS, "expires_at": NWHEN})
BALANCE = obj({
    "balance": CREDITS, "available": CREDITS, "held": CREDITS, "debt": CREDITS,
    "status": {"type": "string", "enum": ["ok", "low", "depleted"]}, "plan": STR, "overage_allowed": BOOL,
    "grants": array(GRANT),
    "money": obj({"currency": STR, "balance": STR, "available": STR},
                 description="What the balance and the available credits are worth at the list price."),
}, ["balance", "available", "held", "debt", "status", "plan", "overage_allowed", "grants"])

USAGE_INPUT = obj({
    "period": {"type": "string", "enum": ["day", "week", "month"], "default": "day"},
    "group_by": {"type": "string", "enum": ["meter", "model", "member", "workflow_run"], "default": "meter"},
    "since": {"type": "string", "description": "ISO 8601; default 30 days before `until`."},
    "until": {"type": "string", "description": "ISO 8601; default now."},
}, additionalProperties=False)
USAGE_ROW = obj({"period_start": WHEN, "key": NSTR, "meter": STR, "quantity": STR, "credits": CREDITS, "events": INT})
USAGE = obj({
    "period": STR, "group_by": STR, "since": WHEN, "until": WHEN, "rows": array(USAGE_ROW),
    "total_credits": CREDITS,
}, ["period", "group_by", "since", "until", "rows"])

ESTIMATE_ITEM_IN = obj({
    "meter": {"type": "string", "description": "e.g. ai.output_tokens, action.medium"},
    "model": {"type": "string", "description": "e.g. gpt-5-mini, for per-model meters."},
    "quantity": QUANTITY_IN, "low": QUANTITY_IN, "high": QUANTITY_IN,
}, ["meter"])
ESTIMATE_INPUT = obj({
    "workflow": {"type": "string", "enum": ["tweet", "thread", "carousel", "story", "video"],
                 "description": "A workflow type; or send `items`."},
    "items": array(ESTIMATE_ITEM_IN, minItems=1, description="Meter quantities (`quantity`, or `low` and `high`)."),
    "billing_mode": {"type": "string", "enum": ["platform_key", "own_key"], "default": "platform_key"},
}, additionalProperties=False)
RANGE = obj({"low": STR, "high": STR})
ESTIMATE = obj({
    "workflow": NSTR, "credits": RANGE, "money": obj({"currency": STR, "low": STR, "high": STR}),
    "usd_per_credit": STR, "items": array({"type": "object"}),
}, ["workflow", "credits", "money", "items"])

LEDGER_ENTRY = obj({
    "id": INT, "kind": STR, "amount": CREDITS, "balance_after": CREDITS, "reason": STR, "idempotency_key": NSTR,
    "grant": NINT, "hold": NINT, "transfer": NINT, "stripe_object_id": NSTR, "created_at": WHEN,
})
RUN = obj({"run_id": STR, "credits": CREDITS, "events": INT, "first_at": NWHEN, "last_at": NWHEN})
HISTORY_INPUT = obj({
    "kind": {"type": "string", "description": "Only entries of this kind (usage, hold_capture, purchase, ...)."},
    "since": {"type": "string", "format": "date", "description": "First day (YYYY-MM-DD), included."},
    "until": {"type": "string", "format": "date", "description": "Last day (YYYY-MM-DD), included."},
    "limit": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20},
    "cursor": {"type": "string", "description": "`next_cursor` of the previous answer: the page after it."},
}, additionalProperties=False)
HISTORY = obj({
    "entries": array(LEDGER_ENTRY), "next_cursor": NSTR,
    "workflow_runs": array(RUN, description="The costliest workflow runs of the last 30 days."),
    "workflow_run_count": INT,
}, ["entries", "next_cursor", "workflow_runs", "workflow_run_count"])

RUN_RECEIPT_INPUT = obj({
    "workflow_run_id": {"type": "string", "minLength": 1, "maxLength": 255,
                        "description": "The `workflow_run_id` the run's usage events and holds were recorded with."},
}, ["workflow_run_id"], additionalProperties=False)
PAID_BY = {"type": "string", "enum": ["organization", "member"],
           "description": "Whose balance paid: the organization's, or the member's personal one."}
RECEIPT_LINE = obj({
    "event_id": INT, "occurred_at": WHEN, "meter": STR, "model": STR, "quantity": STR, "credits_per_unit": STR,
    "credits": CREDITS, "billing_mode": STR, "member": NSTR, "paid_by": PAID_BY,
    "hold_id": {"type": ["integer", "null"], "description": "The hold it was charged against."},
    "spending_token": {"type": ["string", "null"], "description": "The prefix (tgs_…) of the spending token that "
                                                                   "recorded it."},
    "idempotency_key": STR,
}, ["event_id", "occurred_at", "meter", "quantity", "credits", "paid_by", "hold_id", "spending_token"])
RECEIPT_HOLD = obj({
    "id": INT, "parent_id": {"type": ["integer", "null"], "description": "The hold it was carved out of."},
    "workflow_run_id": {"type": "string", "description": "The run it was reserved for (\"\" for none): this run "
                                                         "or another."},
    "status": STR, "reserved": CREDITS, "captured": NSTR,
    "captured_without_events": {"type": "string", "description": "What it captured beyond the usage events charged "
                                "through it, counted in this run's total (0 when it belongs to another run)."},
    "prices_locked": {"type": "boolean", "description": "A quote's hold: usage priced at the quoted rates."},
    "events": INT, "other_run_events": INT, "member": NSTR, "paid_by": PAID_BY, "created_at": WHEN,
    "closed_at": NWHEN, "expires_at": WHEN,
}, ["id", "parent_id", "status", "reserved", "captured", "captured_without_events", "prices_locked"])
RECEIPT_TOKEN = obj({
    "prefix": STR, "name": STR, "hold_id": INT, "credits": CREDITS, "spent": CREDITS,
    "status": {"type": "string", "enum": ["active", "revoked", "expired", "hold_closed"]},
    "expires_at": WHEN, "events": INT, "events_credits": CREDITS,
}, ["prefix", "hold_id", "credits", "spent", "status", "events"])
RECEIPT = obj({
    "workflow_run_id": STR, "receipt_url": STR, "first_at": NWHEN, "last_at": NWHEN,
    "totals": obj({
        "credits": CREDITS, "events": INT, "events_credits": CREDITS, "captured_without_events": CREDITS,
        "paid_by_organization": CREDITS, "paid_by_members": CREDITS,
        "money": obj({"currency": STR, "amount": STR, "credit_price": STR}, ["currency", "amount"]),
    }, ["credits", "events", "paid_by_organization", "paid_by_members", "money"]),
    "by_meter": array(obj({"meter": STR, "name": STR, "unit": STR, "quantity": STR, "credits": CREDITS,
                           "events": INT})),
    "lines": array(RECEIPT_LINE, description="The run's usage events, oldest first, at most 1,000."),
    "lines_truncated": BOOL,
    "holds": array(RECEIPT_HOLD),
    "tokens": array(RECEIPT_TOKEN, description="The spending tokens that recorded the run's events."),
}, ["workflow_run_id", "totals", "by_meter", "lines", "lines_truncated", "holds", "tokens"])

PACK = obj({"code": STR, "name": STR, "credits": CREDITS, "price": STR, "price_cents": INT, "currency": STR})
PACKAGES = obj({"data": array(PACK)}, ["data"])

LIMIT = obj({"limit": NINT, "used": INT, "remaining": NINT}, ["limit", "used", "remaining"])
ENTITLEMENTS_INPUT = obj({
    "feature": {"type": "string", "maxLength": 64,
                "description": "A feature code, e.g. media_generation: refused with feature_not_in_plan when the plan lacks it."},
}, additionalProperties=False)
ENTITLEMENTS = obj({
    "plan": STR, "plan_name": STR, "status": STR, "features": array(STR),
    "limits": obj({
        "credits": obj({
            "available": CREDITS, "balance": CREDITS, "held": CREDITS, "overage_allowed": BOOL,
            "allowance": NSTR, "allowance_used": NSTR, "allowance_period_end": NWHEN,
        }, ["available", "balance", "held", "overage_allowed"]),
        "members": obj({**LIMIT["properties"], "pending_invitations": INT}, ["limit", "used", "remaining"]),
        "api_keys": LIMIT,
    }, ["credits", "members", "api_keys"]),
    "meters": array(obj({"meter": STR, "name": STR, "required_feature": STR, "allowed": BOOL})),
    "allowed": {"type": "boolean", "description": "Present, true, when a `feature` was asked and the plan has it."},
}, ["plan", "plan_name", "status", "features", "limits", "meters"])

HOLD = obj({
    "id": INT, "idempotency_key": NSTR, "status": STR, "credits": CREDITS,
    "used": {**CREDITS, "description": "The part of the reservation spent by usage recorded against the hold."},
    "recorded": {**CREDITS, "description": "All usage recorded against the hold, beyond the reservation too."},
    "left": {**CREDITS, "description": "What the hold still reserves (0 once closed)."},
    "captured": NSTR, "member": NSTR, "parent_hold_id": NINT, "depth": INT,
    "prices_locked": {"type": "boolean", "description": "A quote's hold: usage against it is priced as quoted."},
    "workflow_run_id": STR, "expires_at": WHEN, "created_at": WHEN, "closed_at": NWHEN, "metadata": {"type": "object"},
}, ["id", "status", "credits"])
RESERVE_INPUT = obj({
    "idempotency_key": {"type": "string", "maxLength": 200, "description": "Unique per reservation; a replay answers the first."},
    "credits": CREDITS_IN,
    "expires_in": {"type": "integer", "minimum": 1, "maximum": 86400, "default": 900, "description": "Seconds."},
    "member": {"type": "string", "description": "E-mail of the member the run is for."},
    "workflow_run_id": {"type": "string", "maxLength": 255},
    "metadata": {"type": "object"},
    "meters": array({"type": "string", "maxLength": 64}, maxItems=50,
                    description="The meters the run will record: one that needs a feature the plan lacks refuses the "
                                "hold (feature_not_in_plan)."),
    "parent_hold_id": {"type": "integer", "minimum": 1,
                       "description": "Carve the hold out of this open hold's reservation (for a sub-agent)."},
}, ["idempotency_key", "credits"], additionalProperties=False)

EVENT_IN = obj({
    "idempotency_key": {"type": "string", "maxLength": 200, "description": "Unique per event; a replay answers the first."},
    "meter": {"type": "string", "description": "e.g. ai.output_tokens, compute.seconds, action.medium"},
    "quantity": QUANTITY_IN,
    "model": {"type": "string", "description": "e.g. gpt-5-mini; required by per-model meters."},
    "member": {"type": "string", "description": "E-mail of the member the usage is for."},
    "provider_key_id": {"type": "integer", "description": "One of the org's provider keys: billed compute-only."},
    "workflow_run_id": {"type": "string", "maxLength": 255},
    "occurred_at": {"type": "string", "description": "ISO 8601; default now."},
    "metadata": {"type": "object"},
}, ["idempotency_key", "meter", "quantity"])
EVENT = obj({
    "id": INT, "idempotency_key": STR, "meter": STR, "model": STR, "quantity": STR, "credits_per_unit": STR,
    "credits_charged": CREDITS, "billing_mode": STR, "provider_key_id": NINT, "member": NSTR, "workflow_run_id": STR,
    "hold_id": NINT, "spending_token_id": NINT, "ledger_entry_id": NINT, "occurred_at": WHEN,
    "metadata": {"type": "object"},
    "balance_after": {"type": ["string", "null"],
                      "description": "The org's balance after it; null when a member's personal balance paid."},
    "paid_by": {"type": "string", "enum": ["organization", "member"]},
}, ["id", "idempotency_key", "meter", "quantity", "credits_charged", "balance_after"])
RECORD_INPUT = obj({
    **EVENT_IN["properties"],
    "hold_id": {"type": "integer", "minimum": 1,
                "description": "An open hold to charge the event against: its reservation pays first; only what goes "
                               "beyond it needs available credits."},
}, EVENT_IN["required"], additionalProperties=False)

CAPTURE_INPUT = obj({
    "hold_id": INT,
    "credits": {**CREDITS_IN, "description": "What the run used in all, usage recorded against the hold included; "
                                             "or send `events`; or neither, to capture what was recorded."},
    "events": array(EVENT_IN, minItems=1, description="The usage events the run was made of besides those recorded "
                                                      "against the hold; their total is captured on top."),
}, ["hold_id"], additionalProperties=False)
CAPTURE = obj({"hold": HOLD, "events": array(EVENT), "balance_after": CREDITS}, ["hold", "events", "balance_after"])
RELEASE_INPUT = obj({"hold_id": INT}, ["hold_id"], additionalProperties=False)

ERROR = obj({"error": obj({"type": STR, "code": STR, "message": STR}, ["type", "code", "message"])}, ["error"])
