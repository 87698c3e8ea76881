"""The billing pages people use: overview and usage history (sending credits
is `send`).

Every view is scoped to the signed-in user's current organization
(`membership_required`); nothing takes an org or account id from the URL, so
another organization's data is never one edited URL away. Buying and sending
need a billing role (owner, admin, billing); members see the same pages
read-only.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from datetime import timezone as dt_timezone

from django.http import Http404, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone

from billing import selectors
from billing.forms import HistoryFilterForm
from orgs import selectors as org_selectors
from orgs.current import membership_required
from usage import selectors as usage_selectors
from usage.models import EntryKind, LedgerEntry, Meter
from usage.units import credits_str
from usage.wording import reason_readable


@membership_required
def overview(request):
    membership = request.membership
    org = membership.org
    state = selectors.billing_state_of(org)
    return render(
        request,
        "billing/overview.html",
        {
            "org": org,
            "credits": selectors.credits_overview(org.pk),
            "sub": selectors.subscription_for(org, state),
            "state": state,
            "allowance": selectors.allowance_for(org.pk),
            "auto_topup": selectors.auto_topup_status(org),
            "can_buy": membership.can_manage_billing,
            "member_count": org_selectors.members_of(org).count(),
        },
    )


# --- usage: the ledger history ------------------------------------------------


def describe(entry: LedgerEntry, meters: Mapping[str, Meter]) -> tuple[str, str]:
    """What a history line says about an entry: a title and the sender's note.
    Transfers name the other side; the receiver sees who sent it and why.
    Usage recorded before its reasons were worded well reads like new usage."""
    transfer = entry.transfer
    if transfer is not None and entry.kind == EntryKind.TRANSFER_IN:
        return f"From {transfer.from_account.org.name}", transfer.note
    if transfer is not None and entry.kind == EntryKind.TRANSFER_OUT:
        return f"To {transfer.to_account.org.name}", transfer.note
    return reason_readable(entry.reason, meters) or entry.get_kind_display(), ""


@membership_required
def usage(request):
    org = request.membership.org
    form = HistoryFilterForm(request.GET or None, org=org)
    filters = form.filters() if form.is_bound else usage_selectors.HistoryFilters()
    account = usage_selectors.account_for(org.pk)
    page = None
    if account.pk is not None:
        page = usage_selectors.ledger_page(
            account_id=account.pk,
            filters=filters,
            older_than=request.GET.get("older") or None,
            newer_than=request.GET.get("newer") or None,
        )
        meters = usage_selectors.meters_by_code()
        for entry in page.entries:
            entry.title, entry.note = describe(entry, meters)
    query = request.GET.copy()
    for key in ("older", "newer", "chart", "by"):
        query.pop(key, None)
    period = request.GET.get("chart") if request.GET.get("chart") in usage_selectors.CHART_PERIODS else "day"
    group_by = request.GET.get("by") if request.GET.get("by") in usage_selectors.CHART_GROUPS else "meter"
    chart = usage_selectors.usage_chart(account_id=account.pk, period=period, group_by=group_by)
    return render(
        request,
        "billing/usage.html",
        {
            "org": org,
            "form": form,
            "filters": filters,
            "page": page,
            "filter_query": query.urlencode(),
            "history_params": [(k, v) for k, v in query.items() if v],
            "chart": chart,
            "group_label": usage_selectors.CHART_GROUPS[group_by],
            "chart_data": chart_json(chart),
            "periods": usage_selectors.CHART_PERIODS.items(),
            "groups": usage_selectors.CHART_GROUPS.items(),
            # The costliest runs of the last 30 days, whatever the chart shows:
            # a year of runs is a large sort for one table.
            "runs": usage_selectors.workflow_run_costs(account_id=account.pk, period="day"),
            "estimates": usage_selectors.workflow_estimates(account.plan_code),
            # Members who pay for their own usage (member_usage: personal): this month's totals, not balances.
            "member_totals": [] if org.is_personal else usage_selectors.member_usage_totals(
                org=org, since=timezone.now().replace(day=1, hour=0, minute=0, second=0, microsecond=0)),
        },
    )


_BUCKET_FORMATS = {"day": "%b %-d", "week": "Week of %b %-d", "month": "%b %Y"}


def chart_json(chart) -> dict:
    """The chart for Chart.js: amounts as exact decimal strings (Chart.js reads
    numeric strings), never a Python float."""
    return {
        "labels": [b.strftime(_BUCKET_FORMATS[chart.period]) for b in chart.buckets],
        "series": [{"label": s.label, "data": [credits_str(v) for v in s.values], "other": s.key is None}
                   for s in chart.series],
    }


class _Echo:
    """A file-like object whose write() hands the line back, for csv.writer."""

    def write(self, value: str) -> str:
        return value


# Spreadsheet programs run a cell that starts with one of these as a formula;
# notes and reasons are typed by people, so such cells get a leading quote.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _text_cell(value: str) -> str:
    return "'" + value if value and value.startswith(_FORMULA_START) else value


CSV_HEADER = [
    "date", "kind", "description", "note", "credits", "balance_after", "member", "reference", "entry_id",
]


def _csv_rows(account_id: int | None, filters):
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_HEADER)
    if account_id is None:
        return
    meters = usage_selectors.meters_by_code()
    for entry in usage_selectors.ledger_export_rows(account_id=account_id, filters=filters):
        title, note = describe(entry, meters)
        yield writer.writerow([
            entry.created_at.astimezone(dt_timezone.utc).isoformat(),
            entry.kind,
            _text_cell(title),
            _text_cell(note),
            credits_str(entry.amount_micros),
            credits_str(entry.balance_after_micros),
            _text_cell(entry.member.email if entry.member else ""),
            _text_cell(entry.stripe_object_id or (f"transfer:{entry.transfer_id}" if entry.transfer_id else "")),
            entry.pk,
        ])


@membership_required
def usage_export(request):
    """Every entry the history's filters match, as CSV with exact amounts,
    streamed row by row however many there are."""
    org = request.membership.org
    form = HistoryFilterForm(request.GET or None, org=org)
    filters = form.filters() if form.is_bound else usage_selectors.HistoryFilters()
    account = usage_selectors.account_for(org.pk)
    response = StreamingHttpResponse(_csv_rows(account.pk, filters), content_type="text/csv; charset=utf-8")
    stamp = timezone.now().strftime("%Y%m%d")
    response["Content-Disposition"] = f'attachment; filename="tollgate-{org.slug}-ledger-{stamp}.csv"'
    response["Cache-Control"] = "no-store"
    return response


# --- a workflow run's receipt ------------------------------------------------------


@membership_required
def run_receipt(request, run_id: str):
    """One run of the current organization, itemised (usage.selectors.run_receipt
    scopes it; another organization's run is a 404, as an unknown one)."""
    org = request.membership.org
    try:
        receipt = usage_selectors.run_receipt(org, run_id)
    except usage_selectors.RunNotFound as error:
        raise Http404(error.message) from None
    return render(request, "billing/run_receipt.html", {"org": org, "receipt": receipt})


RECEIPT_CSV_HEADER = [
    "occurred_at", "event_id", "meter", "model", "quantity", "unit", "credits_per_unit", "credits", "billing_mode",
    "member", "paid_by", "hold_id", "spending_token", "idempotency_key",
]


def _receipt_rows(lines):
    writer = csv.writer(_Echo())
    yield writer.writerow(RECEIPT_CSV_HEADER)
    for line in lines:
        yield writer.writerow([
            line.occurred_at.astimezone(dt_timezone.utc).isoformat(),
            line.event_id,
            line.meter,
            _text_cell(line.model),
            format(line.quantity.normalize(), "f"),
            line.unit,
            format(line.credits_per_unit.normalize(), "f"),
            credits_str(line.credits_micros),
            line.billing_mode,
            _text_cell(line.member_email or ""),
            line.paid_by,
            line.hold_id or "",
            line.spending_token or "",
            _text_cell(line.idempotency_key),
        ])


@membership_required
def run_receipt_export(request, run_id: str):
    """The receipt's lines as CSV, every one of them, exact decimals."""
    org = request.membership.org
    try:
        lines = usage_selectors.run_receipt_lines(org, run_id)
    except usage_selectors.RunNotFound as error:
        raise Http404(error.message) from None
    response = StreamingHttpResponse(_receipt_rows(lines), content_type="text/csv; charset=utf-8")
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in run_id)[:80]
    response["Content-Disposition"] = f'attachment; filename="tollgate-{org.slug}-run-{safe}.csv"'
    response["Cache-Control"] = "no-store"
    return response
