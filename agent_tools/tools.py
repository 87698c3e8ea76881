"""The billing tools agents call over MCP, one function each.

Each tool parses its arguments with the serializer the REST view uses, calls
the same service or selector, and renders the same shape, so an answer over
MCP matches the API's. A tool returns a `Result`: the
structured content is what its output schema describes, the text a line a
person can read. Refusals are the services' TollgateErrors; the server turns
them into tool errors carrying the API's envelope (agent_tools.server).

Everything here is synchronous Django code: the server runs it in a thread
that may use the database (agent_tools.server.call_tool).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from django.utils.dateparse import parse_date
from rest_framework import serializers as drf

from accounts.models import Scope
from accounts.services import ApiKeyCheck
from agent_tools import schemas
from billing import api as billing_api
from billing import selectors as billing_selectors
from billing.money import credits_value, currency, format_money
from billing_project.api import iso_z
from billing_project.errors import InvalidRequest
from orgs.models import Membership
from usage import observers as usage_observers
from usage import parsers as usage_parsers
from usage import selectors as usage_selectors
from usage import serializers as usage_serializers
from usage import services as usage_services
from usage.units import MICROS_PER_CREDIT, credits_str

@dataclass(frozen=True)
class Result:
    """What a tool answers: the structured content its output schema describes, and a line for people."""

    data: dict[str, Any]
    text: str


@dataclass(frozen=True)
class ToolSpec:
    name: str
    title: str
    description: str
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]
    scope: str
    fn: Callable[[ApiKeyCheck, dict[str, Any]], Result]

    @property
    def writes(self) -> bool:
        return self.scope != Scope.READ


# --- wording ---------------------------------------------------------------------


def credits_words(micros: int) -> str:
    """1_500_000_000 -> "1,500"; 2_500_000 -> "2.5": credits with thousands separators, exact."""
    return format(Decimal(credits_str(micros)), ",f")


def money_words(micros: int) -> str:
    return format_money(credits_value(micros))


def _parse(serializer_class, data: Any) -> Any:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)  # drf.ValidationError -> invalid_request (billing_project.api.error_for)
    return serializer.validated_data


def _member(check: ApiKeyCheck, email: str | None):
    """The member an amount is attributed to, as the REST views look it up (usage.api.UsageAPIView.member)."""
    if not email:
        return None
    membership = Membership.objects.select_related("user").filter(org=check.org, user__email__iexact=email).first()
    if membership is None:
        raise InvalidRequest(f"{email} is not a member of this organization.", code="unknown_member")
    return membership.user


# --- reads -----------------------------------------------------------------------


def billing_balance(check: ApiKeyCheck, args: dict[str, Any]) -> Result:
    summary = usage_selectors.balance_summary(check.org.pk)
    data = usage_serializers.balance_data(summary)
    data["money"] = {"currency": currency().lower(),
                     "balance": str(credits_value(summary.balance_micros)),
                     "available": str(credits_value(summary.available_micros))}
    text = f"Balance: {credits_words(summary.balance_micros)} credits ({money_words(summary.balance_micros)})"
    if summary.held_micros:
        text += f"; {credits_words(summary.available_micros)} available, {credits_words(summary.held_micros)} held"
    if summary.debt_micros:
        text += f"; {credits_words(summary.debt_micros)} owed"
    text += f". Plan: {summary.plan_code}, status {summary.status}."
    return Result(data, text)


def billing_usage(check: ApiKeyCheck, args: dict[str, Any]) -> Result:
    q = _parse(usage_serializers.UsageSummaryQuerySerializer, args)
    rows = usage_selectors.usage_series(check.org, period=q["period"], group_by=q["group_by"], since=q["since"], until=q["until"])
    total = sum(row.credits_micros for row in rows)
    data = {
        "period": q["period"], "group_by": q["group_by"],
        "since": iso_z(q["since"]), "until": iso_z(q["until"]),
        "rows": usage_serializers.UsageRowSerializer(rows, many=True).data,
        "total_credits": credits_str(total),
    }
    keys = {row.key for row in rows}
    text = (f"Usage {q['since']:%Y-%m-%d} to {q['until']:%Y-%m-%d}: {credits_words(total)} credits "
            f"({money_words(total)}) over {sum(r.events for r in rows):,} events, "
            f"{len(keys)} {q['group_by'].replace('_', ' ')}{'' if len(keys) == 1 else 's'}, by {q['period']}.")
    return Result(data, text)


ESTIMATE_ARGS = {"workflow", "items", "billing_mode"}


def billing_estimate(check: ApiKeyCheck, args: dict[str, Any]) -> Result:
    # The REST serializer also takes a quote's fields (`reserve`, ...); this read
    # tool reserves nothing, so it says so rather than answering a bare estimate
    # to an agent that asked for a hold.
    unknown = set(args) - ESTIMATE_ARGS
    if unknown:
        raise drf.ValidationError({
            name: ["billing_estimate only estimates: to reserve, call billing_reserve with the estimate's high "
                   "credits (or POST /api/v1/estimates with reserve: true for a quote at locked prices)."]
            if name in {"reserve", "idempotency_key", "expires_in", "member", "workflow_run_id"} else ["Unknown argument."]
            for name in sorted(unknown)
        })
    data = _parse(usage_serializers.EstimateRequestSerializer, args)
    estimate = usage_selectors.estimate(
        plan_code=usage_selectors.account_for(check.org.pk).plan_code, workflow=data.get("workflow"), items=data.get("items"),
        billing_mode=data["billing_mode"],
    )
    out = usage_serializers.estimate_data(estimate)
    what = f"A {estimate.workflow}" if estimate.workflow else "This usage"
    low, high = estimate.low_micros, estimate.high_micros
    amount = (f"{credits_words(low)} credits ({money_words(low)})" if low == high else
              f"{credits_words(low)} to {credits_words(high)} credits ({money_words(low)} to {money_words(high)})")
    return Result(out, f"{what} would cost {amount}.")


HISTORY_RUNS = 10


def billing_history(check: ApiKeyCheck, args: dict[str, Any]) -> Result:
    unknown = set(args) - {"kind", "since", "until", "limit", "cursor"}
    if unknown:
        raise drf.ValidationError({name: ["Unknown argument."] for name in sorted(unknown)})
    days: dict[str, date | None] = {}
    for name in ("since", "until"):
        value = args.get(name)
        day = parse_date(value) if isinstance(value, str) else None
        if value is not None and day is None:
            raise drf.ValidationError({name: ["A day as YYYY-MM-DD."]})
        days[name] = day
    limit = args.get("limit", 20)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 100:
        raise drf.ValidationError({"limit": ["A whole number from 1 to 100."]})
    kind = args.get("kind") or ""
    if not isinstance(kind, str):
        raise drf.ValidationError({"kind": ["A ledger entry kind."]})
    if kind:
        usage_selectors.ledger_entries(account_id=None, kind=kind)  # GET /ledger's refusal of an unknown kind (lazy: no query)
    filters = usage_selectors.HistoryFilters(kind=kind, since=days["since"], until=days["until"])
    cursor = args.get("cursor")
    if cursor is not None and (not isinstance(cursor, str) or usage_selectors.cursor_parse(cursor) is None):
        raise drf.ValidationError({"cursor": ["Not a cursor this tool gave: pass `next_cursor`."]})
    account = usage_selectors.account_for(check.org.pk)
    page = usage_selectors.ledger_page(account_id=account.pk, filters=filters, older_than=cursor, size=limit) \
        if account.pk else usage_selectors.HistoryPage([], None, None)
    runs = usage_selectors.workflow_run_costs(account_id=account.pk, limit=HISTORY_RUNS)
    data = {
        "entries": usage_serializers.LedgerEntrySerializer(page.entries, many=True).data,
        "next_cursor": page.older,
        "workflow_runs": [
            {"run_id": run.run_id, "credits": credits_str(run.credits_micros), "events": run.events,
             "first_at": iso_z(run.first_at), "last_at": iso_z(run.last_at)}
            for run in runs.runs
        ],
        "workflow_run_count": runs.run_count,
    }
    lines = [f"{len(page.entries)} ledger entries, newest first" + (" (more: pass next_cursor)." if page.older else ".")]
    for entry in page.entries[:5]:
        lines.append(f"- {entry.created_at:%Y-%m-%d %H:%M} {entry.kind}: {credits_words(entry.amount_micros)} credits"
                     + (f" ({entry.reason})" if entry.reason else ""))
    if runs.runs:
        top = runs.runs[0]
        lines.append(f"{runs.run_count} workflow runs in the last 30 days; the costliest, {top.run_id}, "
                     f"cost {credits_words(top.credits_micros)} credits over {top.events} events.")
    return Result(data, "\n".join(lines))


def billing_run_receipt(check: ApiKeyCheck, args: dict[str, Any]) -> Result:
    """GET /api/v1/runs/{id}: one workflow run, itemised (an unknown run or another org's is run_not_found)."""
    unknown = set(args) - {"workflow_run_id"}
    if unknown:
        raise drf.ValidationError({name: ["Unknown argument."] for name in sorted(unknown)})
    run_id = args.get("workflow_run_id")
    if not isinstance(run_id, str) or not run_id or len(run_id) > 255:
        raise drf.ValidationError({"workflow_run_id": ["The run's id: a string of 1 to 255 characters."]})
    receipt = usage_selectors.run_receipt(check.org, run_id)
    total = receipt.total_micros
    text = (f"Run {run_id}: {credits_words(total)} credits ({money_words(total)}) over "
            f"{receipt.line_count:,} event{'' if receipt.line_count == 1 else 's'}")
    if receipt.holds:
        text += f" and {len(receipt.holds)} hold{'' if len(receipt.holds) == 1 else 's'}"
    text += "."
    if receipt.unitemised_micros:
        text += f" {credits_words(receipt.unitemised_micros)} credits were captured on holds beyond their events."
    if receipt.tokens:
        text += " Spending tokens: " + "; ".join(
            f"{t.prefix}{f' ({t.name})' if t.name else ''} on hold {t.hold_id}, {credits_words(t.events_micros)} "
            f"credits over {t.events:,} event{'' if t.events == 1 else 's'}" for t in receipt.tokens[:5]) + "."
    if receipt.paid_by_members_micros:
        # Totals only: a member's personal balance stays theirs, as on the API.
        text += f" Members paid {credits_words(receipt.paid_by_members_micros)} credits from their personal balances."
    if receipt.by_meter:
        text += " By meter: " + "; ".join(
            f"{m.phrase}: {credits_words(m.credits_micros)} credits" for m in receipt.by_meter[:5]) + "."
    return Result(usage_serializers.receipt_data(receipt), text)


def billing_packages(check: ApiKeyCheck, args: dict[str, Any]) -> Result:
    packs = list(billing_selectors.packs_active())
    data = {"data": [billing_api.PackSerializer(p).data for p in packs]}
    text = "Credit packs: " + ("; ".join(
        f"{p.name} ({p.code}): {credits_words(p.credits_micros)} credits for "
        f"{format_money(p.amount_cents, minor_units=True, currency_code=p.currency)}" for p in packs
    ) or "none on sale.")
    return Result(data, text)


def billing_entitlements(check: ApiKeyCheck, args: dict[str, Any]) -> Result:
    """GET /api/v1/entitlements; with `feature`, first the check of
    POST /api/v1/entitlements/check (a refusal is the API's 403 feature_not_in_plan)."""
    feature = args.get("feature")
    if feature is not None:
        billing_selectors.feature_check(check.org, str(feature))
    ent = billing_selectors.entitlements(check.org)
    data = billing_api.entitlements_data(ent)
    labels = ", ".join(billing_selectors.FEATURE_LABELS.get(f, f) for f in data["features"]) or "no extra features"
    text = f"Plan: {data['plan_name']} ({data['status']}). Includes: {labels}."
    if feature is not None:
        data["allowed"] = True
        text = f"Allowed: {billing_selectors.FEATURE_LABELS.get(feature, feature)} is in the plan. " + text
    text += f" Available: {credits_words(ent.credits.available_micros)} credits."
    return Result(data, text)


# --- writes (usage:write) ------------------------------------------------------------


def billing_reserve(check: ApiKeyCheck, args: dict[str, Any]) -> Result:
    data = _parse(usage_serializers.HoldCreateSerializer, args)
    hold = usage_services.hold_create(
        org=check.org, amount_micros=data["credits"], idempotency_key=data["idempotency_key"],
        member=_member(check, data.get("member")), expires_in=timedelta(seconds=data["expires_in"]),
        workflow_run_id=data["workflow_run_id"], metadata=data["metadata"],
        request_fingerprint=usage_parsers.request_fingerprint(args), meters=data["meters"],
        parent_hold_id=data.get("parent_hold_id"), actor=check.key,
    )
    out = usage_serializers.HoldSerializer(hold).data
    return Result(out, f"Reserved {credits_words(hold.amount_micros)} credits (hold {hold.pk}) until "
                       f"{hold.expires_at:%Y-%m-%d %H:%M} UTC. Capture what the run used, or release it.")


def _hold_id(args: dict[str, Any]) -> int:
    hold_id = args.get("hold_id")
    if isinstance(hold_id, bool) or not isinstance(hold_id, int):
        raise drf.ValidationError({"hold_id": ["The hold's id, a whole number."]})
    return hold_id


def billing_capture(check: ApiKeyCheck, args: dict[str, Any]) -> Result:
    hold_id = _hold_id(args)
    data = _parse(usage_serializers.HoldCaptureSerializer, {k: v for k, v in args.items() if k != "hold_id"})
    if "events" in data:
        hold, events = usage_services.hold_capture_events(org=check.org, hold_id=hold_id, events=data["events"], actor=check.key)
    else:
        hold, _entry = usage_services.hold_capture(org=check.org, hold_id=hold_id, amount_micros=data.get("credits"),
                                                   actor=check.key)
        events = list(hold.usage_events.select_related("meter", "member"))
    account = usage_selectors.account_for(check.org.pk)
    out = {"hold": usage_serializers.HoldSerializer(hold).data, "events": [usage_serializers.event_data(e) for e in events],
           "balance_after": credits_str(account.balance_micros)}
    captured = hold.captured_micros or 0
    if captured > hold.amount_micros:
        # Usage recorded against a hold may go beyond it ("Captured 255 of 20 reserved" read as a mistake).
        what = (f"Captured {credits_words(captured)} credits (hold {hold.pk} reserved {credits_words(hold.amount_micros)}; "
                f"the other {credits_words(captured - hold.amount_micros)} came from the balance).")
    else:
        what = f"Captured {credits_words(captured)} of {credits_words(hold.amount_micros)} reserved credits (hold {hold.pk})."
    return Result(out, f"{what} Balance: {credits_words(account.balance_micros)} credits "
                       f"({money_words(account.balance_micros)}).")


def billing_release(check: ApiKeyCheck, args: dict[str, Any]) -> Result:
    hold_id = _hold_id(args)
    unknown = set(args) - {"hold_id"}
    if unknown:
        raise drf.ValidationError({name: ["Unknown argument."] for name in sorted(unknown)})
    hold = usage_services.hold_release(org=check.org, hold_id=hold_id, actor=check.key)
    return Result(usage_serializers.HoldSerializer(hold).data, f"Hold {hold.pk} is {hold.status}: nothing was charged for it.")


def billing_record_usage(check: ApiKeyCheck, args: dict[str, Any]) -> Result:
    event = _parse(usage_serializers.UsageEventSerializer, args)
    recorded = usage_services.usage_record(org=check.org, event=event, actor=check.key)
    usage_observers.usage_events_counted(
        surface="mcp", recorded=int(not recorded.replayed), replayed=int(recorded.replayed),
    )
    e = recorded.event
    out = usage_serializers.event_data(e)
    text = (f"Recorded {format(e.quantity.normalize(), ',f')} {e.meter.code}"
            f"{' (' + e.model + ')' if e.model else ''}: {credits_words(e.credits_micros)} credits. ")
    if out["paid_by"] == "member":
        # A member's personal balance paid (member_usage: personal): the org never sees it, as on the API.
        text += f"Paid by {out['member']} from their personal balance."
    else:
        text += f"Balance: {credits_words(e.balance_after_micros)} credits ({money_words(e.balance_after_micros)})."
    if recorded.replayed:
        text = "Already recorded (same idempotency key): " + text
    return Result(out, text)


TOOLS: dict[str, ToolSpec] = {spec.name: spec for spec in [
    ToolSpec("billing_balance", "Balance",
             "The organization's credit balance: available and held credits, debt, status (ok, low, depleted), "
             "plan, and the grants that can be spent, with their worth in money.",
             schemas.EMPTY_INPUT, schemas.BALANCE, Scope.READ, billing_balance),
    ToolSpec("billing_usage", "Usage totals",
             "Usage totals per day, week or month, grouped by meter, model, member or workflow run (as GET "
             "/api/v1/usage/summary), with the credits they cost.",
             schemas.USAGE_INPUT, schemas.USAGE, Scope.READ, billing_usage),
    ToolSpec("billing_estimate", "Estimate a cost",
             "What a workflow type (tweet, thread, carousel, story, video) or a list of meter quantities would cost "
             "on the organization's plan, in credits and money, as a low-high range. Records nothing.",
             schemas.ESTIMATE_INPUT, schemas.ESTIMATE, Scope.READ, billing_estimate),
    ToolSpec("billing_history", "Ledger and workflow runs",
             "The credit ledger, newest first (one page; pass `next_cursor` for the next), and the costliest "
             "workflow runs of the last 30 days with their credits and events.",
             schemas.HISTORY_INPUT, schemas.HISTORY, Scope.READ, billing_history),
    ToolSpec("billing_run_receipt", "Receipt of a workflow run",
             "One workflow run itemised, as GET /api/v1/runs/{workflow_run_id}: every usage event (meter, model, "
             "quantity, credits, who paid, the hold and spending token it was recorded with), the holds it used "
             "(child holds name their parent; a quote's are prices_locked), the spending tokens that recorded its "
             "events, and the totals in credits and money, as the ledger debited them. An unknown run, or another "
             "organization's, is run_not_found.",
             schemas.RUN_RECEIPT_INPUT, schemas.RECEIPT, Scope.READ, billing_run_receipt),
    ToolSpec("billing_packages", "Credit packs",
             "The credit packs on sale: credits and price. Buying happens on the billing pages (top_up_url).",
             schemas.EMPTY_INPUT, schemas.PACKAGES, Scope.READ, billing_packages),
    ToolSpec("billing_entitlements", "Plan and features",
             "The plan in force, its status (trialing, active, past_due, free), the features it unlocks, and its "
             "limits with what is used of each (credits, members, API keys), as GET /api/v1/entitlements. With "
             "`feature`, refused with feature_not_in_plan (and the plan that has it) when the plan lacks it.",
             schemas.ENTITLEMENTS_INPUT, schemas.ENTITLEMENTS, Scope.READ, billing_entitlements),
    ToolSpec("billing_reserve", "Reserve credits",
             "Reserve credits before a run (a hold). Refused with insufficient_credits (and a top-up link) unless "
             "the available credits cover it. Expires after `expires_in` seconds. With `parent_hold_id`, carves "
             "a child hold for a sub-agent out of an open hold's reservation instead (never more than it has "
             "left). Needs the usage:write scope.",
             schemas.RESERVE_INPUT, schemas.HOLD, Scope.USAGE_WRITE, billing_reserve),
    ToolSpec("billing_capture", "Capture a hold",
             "Charge a hold with what the run used (`credits` in all, or the run's usage `events`; with neither, "
             "what was recorded against it with billing_record_usage's `hold_id`) and free the rest. "
             "Needs the usage:write scope.",
             schemas.CAPTURE_INPUT, schemas.CAPTURE, Scope.USAGE_WRITE, billing_capture),
    ToolSpec("billing_release", "Release a hold",
             "Release a hold without charging (harmless twice). Needs the usage:write scope.",
             schemas.RELEASE_INPUT, schemas.HOLD, Scope.USAGE_WRITE, billing_release),
    ToolSpec("billing_record_usage", "Record usage",
             "Record one usage event (priced from the rate card) and debit its credits; refused with "
             "insufficient_credits (and a top-up link) when they are not there. A replayed idempotency key answers "
             "the first result. With `hold_id`, the event is charged against that open hold, whose reservation "
             "pays first and shrinks. Needs the usage:write scope.",
             schemas.RECORD_INPUT, schemas.EVENT, Scope.USAGE_WRITE, billing_record_usage),
]}
