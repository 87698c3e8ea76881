"""The usage API: balance, usage events, holds, estimates, ledger, summary, transfers.

Views are thin: a serializer parses, a service or selector does the work, the
one exception handler renders every refusal as the error envelope. The org is
always the API key's (`request.auth.org`).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound as DRFNotFound
from rest_framework.exceptions import ValidationError
from rest_framework.generics import ListAPIView
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from billing_project.api import error_for, iso_z
from billing_project.errors import InvalidRequest, NotFound, TollgateError
from orgs.models import Membership, Organization
from usage import observers, parsers, selectors, serializers, services
from usage.authentication import AcceptsSpendingTokens
from usage.models import SpendingToken

ERRORS = {
    400: OpenApiResponse(description="invalid_request: a field is missing or wrong (`fields` names each)"),
    401: OpenApiResponse(description="authentication_failed"),
    403: OpenApiResponse(description="permission_denied: the key lacks the scope; or `meter_not_allowed` "
                                     "(an event's meter is outside the calling key's list), with key_prefix, "
                                     "meter, allowed_meters"),
}
PAYMENT = {402: OpenApiResponse(description="payment_required: `insufficient_credits` or `spend_limit_reached`, "
                                            "with balance, required, top_up_url, billing_url; or `usage_paused` "
                                            "(the calling API key was paused by the runaway breaker), with "
                                            "key_prefix, paused_at, reason, resume_url; or `key_limit_reached` "
                                            "(the calling API key's monthly limit), with key_prefix, limit, spent, "
                                            "required, settings_url; or `hold_budget_exceeded` (usage against a "
                                            "child hold past what it and its parents have left), with hold_id, "
                                            "left, required")}
# Events and holds on a meter that needs a plan feature (Meter.required_feature).
FEATURE = {403: OpenApiResponse(description="permission_denied (the key lacks the scope), meter_not_allowed (the key "
                                            "may not record the meter) or feature_not_in_plan: the meter needs a "
                                            "feature the plan lacks, with required_feature, meter, plan, "
                                            "upgrade_plan, upgrade_plan_name and upgrade_url")}
CONFLICT = {409: OpenApiResponse(description="conflict: the idempotency key was used for a different request")}
NOT_FOUND = {404: OpenApiResponse(description="not_found")}
# What recording usage answers besides, when the Bearer is a spending token (docs/api.md "Spending tokens").
TOKEN = {
    401: OpenApiResponse(description="authentication_failed; for a spending token also token_revoked or token_expired"),
    402: OpenApiResponse(description=PAYMENT[402].description + "; for a spending token also `token_ceiling_reached`, "
                                     "with token_prefix, ceiling, spent, required"),
    403: OpenApiResponse(description=FEATURE[403].description + "; for a spending token also token_hold_closed (its "
                                     "hold ended), token_not_allowed (an event naming another hold) and "
                                     "meter_not_allowed with token_prefix (a meter outside the token's list)"),
}
REPLAYED_HEADER = "Idempotent-Replayed"


class UsageAPIView(APIView):
    parser_classes = [parsers.DecimalJSONParser]

    def parse(self, serializer_class, data: Any) -> dict:
        serializer = serializer_class(data=data)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data

    @property
    def org(self) -> Organization:
        return self.request.auth.org

    def member(self, email: str | None):
        if not email:
            return None
        membership = Membership.objects.select_related("user").filter(org=self.org, user__email__iexact=email).first()
        if membership is None:
            raise InvalidRequest(f"{email} is not a member of this organization.", code="unknown_member")
        return membership.user


def _error_body(error: TollgateError | ValidationError) -> dict[str, Any]:
    """A refused batch item's error: the envelope's, with its status inside."""
    body, status_code = error_for(error)
    return {**body, "status": status_code}


# --- balance --------------------------------------------------------------------


class BalanceView(UsageAPIView):
    @extend_schema(
        summary="Balance, available credits, holds and spendable grants",
        responses={200: serializers.BalanceSerializer, **ERRORS},
        examples=[OpenApiExample("Balance", response_only=True, value={
            "balance": "1250.5", "available": "1200.5", "held": "50", "debt": "0", "status": "ok", "plan": "pro",
            "overage_allowed": False,
            "grants": [{"id": 7, "source": "plan_allowance", "remaining": "250.5", "expires_at": "2026-12-01T00:00:00Z"},
                       {"id": 3, "source": "purchase", "remaining": "1000", "expires_at": None}]})],
    )
    def get(self, request):
        return Response(serializers.balance_data(selectors.balance_summary(request.auth.org_id)))


# --- usage events ---------------------------------------------------------------

EVENT_EXAMPLE = {"idempotency_key": "run-8731:llm-1", "meter": "ai.output_tokens", "model": "gpt-5-mini",
                 "quantity": 12400, "member": "ada@example.com", "workflow_run_id": "run-8731",
                 "metadata": {"step": "draft"}}
EVENT_RESULT_EXAMPLE = {"id": 981, "idempotency_key": "run-8731:llm-1", "meter": "ai.output_tokens", "model": "gpt-5-mini",
                        "quantity": "12400", "credits_per_unit": "0.0003", "credits_charged": "3.72",
                        "billing_mode": "platform_key", "provider_key_id": None, "member": "ada@example.com",
                        "workflow_run_id": "run-8731", "hold_id": None, "spending_token_id": None, "ledger_entry_id": 4410,
                        "occurred_at": "2026-11-21T06:13:14Z", "balance_after": "1246.78", "metadata": {"step": "draft"}}


def _recorder(request) -> tuple[Any, SpendingToken | None]:
    """Who records: the API key, or, for a spending token, the key that issued it
    (its limits apply) and the token (its hold, meters and ceiling apply)."""
    if isinstance(request.auth, SpendingToken):
        return request.auth.api_key, request.auth
    return request.auth, None


class UsageEventView(AcceptsSpendingTokens, UsageAPIView):
    @extend_schema(
        summary="Record one usage event (check-and-debit)",
        description="Priced from the rate card; billed compute-only when `provider_key_id` names one of the org's "
                    "provider keys. Refused with 402 (nothing recorded) when the account, the member's monthly "
                    "cap or the calling key's monthly limit cannot cover it (403 when the key may not record the meter). "
                    "With `hold_id`, the event is charged against that open hold: what the hold still reserves "
                    "pays first and shrinks, only the part beyond it is checked (404 hold_not_found, 409 "
                    "hold_not_open, hold_member_mismatch). Replaying an idempotency key with the same body answers the first result "
                    f"(same status, header `{REPLAYED_HEADER}: true`); with a different body, 409. "
                    "The Bearer may be a spending token (`tgs_...`, see `POST /api/v1/holds/{id}/tokens`): the "
                    "event is then recorded against the token's hold, within its meters and ceiling.",
        request=serializers.UsageEventSerializer,
        responses={201: serializers.UsageEventResultSerializer, **ERRORS, **FEATURE, **PAYMENT, **NOT_FOUND,
                   **CONFLICT, **TOKEN},
        examples=[OpenApiExample("Output tokens", request_only=True, value=EVENT_EXAMPLE),
                  OpenApiExample("Recorded", response_only=True, status_codes=["201"], value=EVENT_RESULT_EXAMPLE)],
    )
    def post(self, request):
        event = self.parse(serializers.UsageEventSerializer, request.data)
        actor, token = _recorder(request)
        recorded = services.usage_record(org=self.org, event=event, actor=actor, token=token)
        observers.usage_events_counted(surface="api", recorded=int(not recorded.replayed), replayed=int(recorded.replayed))
        headers = {REPLAYED_HEADER: "true"} if recorded.replayed else {}
        return Response(serializers.event_data(recorded.event), status=status.HTTP_201_CREATED, headers=headers)


class UsageBatchView(AcceptsSpendingTokens, UsageAPIView):
    @extend_schema(
        summary="Record up to 1,000 usage events",
        description="One transaction; each event is decided in order and answered on its own: `recorded`, "
                    "`replayed` (its key was seen with the same event: the first answer) or `refused` with the "
                    "error it would have had alone (`status` 400/402/403/404/409; 403 `feature_not_in_plan` for a "
                    "meter the plan does not include). The Bearer may be a spending token, as for one event.",
        request=serializers.UsageBatchSerializer,
        responses={200: serializers.BatchResponseSerializer, **ERRORS, 401: TOKEN[401],
                   403: OpenApiResponse(description="permission_denied (the key lacks the scope); for a spending token "
                                                    "token_hold_closed (its hold ended)")},
        examples=[OpenApiExample("Two events", request_only=True, value={"events": [
            EVENT_EXAMPLE, {"idempotency_key": "run-8731:step", "meter": "action.medium", "quantity": 1}]}),
            OpenApiExample("Results", response_only=True, value={"recorded": 1, "replayed": 0, "refused": 1, "results": [
                {"index": 0, "idempotency_key": "run-8731:llm-1", "status": "recorded", "event": EVENT_RESULT_EXAMPLE,
                 "error": None},
                {"index": 1, "idempotency_key": "run-8731:step", "status": "refused", "event": None,
                 "error": {"type": "payment_required", "code": "insufficient_credits", "status": 402,
                           "message": "This needs 2.5 credits but only 1.2 are available. Top up to continue."}}]})],
    )
    def post(self, request):
        raw = self.parse(serializers.UsageBatchSerializer, request.data)
        inputs, parse_errors = [], {}
        for index, item in enumerate(raw):
            try:
                inputs.append(parsers.parse_event(item))
            except ValidationError as error:
                parse_errors[index] = (item.get("idempotency_key") if isinstance(item, dict) else None, error)
        actor, token = _recorder(request)
        results = services.usage_record_batch(org=self.org, events=inputs, actor=actor, token=token) if inputs else []
        out, counts = [], {"recorded": 0, "replayed": 0, "refused": 0}
        done = iter(results)
        for index in range(len(raw)):
            if index in parse_errors:
                key, error = parse_errors[index]
                out.append({"index": index, "idempotency_key": key if isinstance(key, str) else None,
                            "status": "refused", "event": None, "error": _error_body(error)})
                counts["refused"] += 1
                continue
            r = next(done)
            counts[r.status] += 1
            out.append({"index": index, "idempotency_key": r.idempotency_key, "status": r.status,
                        "event": serializers.event_data(r.event) if r.event is not None else None,
                        "error": _error_body(r.error) if r.error is not None else None})
        observers.usage_events_counted(surface="api", **counts)
        return Response({**counts, "results": out})


# --- holds ----------------------------------------------------------------------


class HoldCreateView(UsageAPIView):
    @extend_schema(
        summary="Reserve credits before a run",
        description="Refused with 402 unless available credits (and the member's cap and the calling key's "
                    "monthly limit) cover it. Expires after `expires_in` seconds (default 900) and releases itself. "
                    "`meters` names what the run will record: one that needs a feature the plan lacks refuses the "
                    "hold with 403 feature_not_in_plan. With `parent_hold_id`, a child hold carved out of that "
                    "open hold's reservation (nothing more is reserved from the balance; 409 "
                    "parent_hold_insufficient when it has less left, hold_depth_exceeded, hold_children_exceeded, "
                    "hold_not_open; 404 hold_not_found).",
        request=serializers.HoldCreateSerializer,
        responses={201: serializers.HoldSerializer, **ERRORS, **FEATURE, **PAYMENT, **NOT_FOUND,
                   409: OpenApiResponse(description="conflict: idempotency_key_reused; with parent_hold_id "
                                                    "parent_hold_insufficient, hold_not_open, hold_depth_exceeded, "
                                                    "hold_children_exceeded, hold_member_mismatch")},
        examples=[OpenApiExample("Hold", request_only=True, value={"idempotency_key": "run-8731", "credits": "50",
                                                                    "expires_in": 600, "workflow_run_id": "run-8731"}),
                  OpenApiExample("Child hold", request_only=True, value={"idempotency_key": "run-8731:researcher",
                                                                          "credits": "10", "parent_hold_id": 812})],
    )
    def post(self, request):
        data = self.parse(serializers.HoldCreateSerializer, request.data)
        hold = services.hold_create(
            org=self.org, amount_micros=data["credits"], idempotency_key=data["idempotency_key"],
            member=self.member(data.get("member")), expires_in=timedelta(seconds=data["expires_in"]),
            workflow_run_id=data["workflow_run_id"], metadata=data["metadata"],
            request_fingerprint=parsers.request_fingerprint(request.data), meters=data["meters"],
            parent_hold_id=data.get("parent_hold_id"), actor=request.auth,
        )
        return Response(serializers.HoldSerializer(hold).data, status=status.HTTP_201_CREATED)


class HoldView(UsageAPIView):
    @extend_schema(
        summary="One hold: what it reserves, used, recorded and has left",
        description="The organization's hold (or one made for it on a member's personal balance); another "
                    "organization's or an unknown id is 404 hold_not_found. Child holds name their "
                    "`parent_hold_id`.",
        responses={200: serializers.HoldSerializer, **ERRORS, **NOT_FOUND},
    )
    def get(self, request, hold_id: int):
        return Response(serializers.HoldSerializer(selectors.hold_of_org(self.org, hold_id)).data)


class HoldCaptureView(UsageAPIView):
    @extend_schema(
        summary="Capture a hold: debit what the run used and free the rest",
        description="Send `credits` (the amount the run used in all), `events` (the usage events the run was "
                    "made of besides those recorded against the hold), or nothing: what was recorded against the "
                    "hold (`hold_id` on usage events) while it was open, which is debited already. Less than was "
                    "recorded is 409 capture_below_recorded. What the hold still reserves is always capturable; "
                    "the part above it must fit in the available credits besides this hold and in the member's "
                    "monthly cap (unless the plan allows overage), else 402, nothing is recorded and the hold "
                    "stays open. Capturing again with the same amount (or none) answers the first capture; another "
                    "amount is 409.",
        request=serializers.HoldCaptureSerializer,
        responses={200: serializers.HoldCaptureResponseSerializer, **ERRORS, **FEATURE, **PAYMENT, **NOT_FOUND,
                   **CONFLICT},
        examples=[OpenApiExample("By amount", request_only=True, value={"credits": "37.25"}),
                  OpenApiExample("What was recorded", request_only=True, value={}),
                  OpenApiExample("By events", request_only=True, value={"events": [EVENT_EXAMPLE]})],
    )
    def post(self, request, hold_id: int):
        data = self.parse(serializers.HoldCaptureSerializer, request.data)
        if "events" in data:
            hold, events = services.hold_capture_events(org=self.org, hold_id=hold_id, events=data["events"], actor=request.auth)
        else:
            hold, _entry = services.hold_capture(org=self.org, hold_id=hold_id, amount_micros=data.get("credits"),
                                                 actor=request.auth)
            events = list(hold.usage_events.select_related("meter", "member"))
        account = selectors.account_for(self.org.pk)  # one row; the grants are not needed here
        return Response({"hold": serializers.HoldSerializer(hold).data, "events": [serializers.event_data(e) for e in events],
                         "balance_after": serializers.credits_str(account.balance_micros)})


class HoldReleaseView(UsageAPIView):
    @extend_schema(
        summary="Release a hold without charging (harmless twice)",
        request=None, responses={200: serializers.HoldSerializer, **ERRORS, **NOT_FOUND, **CONFLICT},
    )
    def post(self, request, hold_id: int):
        hold = services.hold_release(org=self.org, hold_id=hold_id, actor=request.auth)
        return Response(serializers.HoldSerializer(hold).data)


# --- spending tokens --------------------------------------------------------------



class HoldTokensView(UsageAPIView):
    @extend_schema(
        summary="A hold's spending tokens, newest first (never their secrets)",
        responses={200: serializers.SpendingTokenSerializer(many=True), **ERRORS, **NOT_FOUND},
    )
    def get(self, request, hold_id: int):
        tokens = selectors.spending_tokens(self.org, hold_id)
        return Response(serializers.SpendingTokenSerializer(tokens, many=True).data)

    @extend_schema(
        summary="Issue a spending token for a hold",
        description="A token, shown once (`tgs_<prefix>.<secret>`), that can do exactly one thing: record usage "
                    "events against this hold (or one of its child holds) as the Bearer of `POST /api/v1/usage/events` "
                    "and `/usage/events/batch`, within its `credits` ceiling and `meters`, until it expires (default "
                    "900 s, at most 24 h, never past the hold's expiry). It records as the API key that issued it, "
                    "whose monthly limit and meters apply too. Any other call with it is 403 `token_not_allowed`. "
                    "Revoking it, or the hold ending, stops it at once. Needs `usage:write`; a hold that has ended "
                    "is 409 `hold_closed`.",
        request=serializers.SpendingTokenCreateSerializer,
        responses={201: serializers.SpendingTokenCreatedSerializer, **ERRORS, **NOT_FOUND,
                   402: OpenApiResponse(description="usage_paused: the calling API key was paused"),
                   409: OpenApiResponse(description="hold_closed: the hold was captured, released or expired")},
        examples=[OpenApiExample("A tool's token", request_only=True, value={
            "credits": "5", "meters": ["ai.output_tokens"], "expires_in": 600, "name": "search tool"})],
    )
    def post(self, request, hold_id: int):
        data = self.parse(serializers.SpendingTokenCreateSerializer, request.data)
        token, secret = services.spending_token_create(
            org=self.org, hold_id=hold_id, ceiling_micros=data.get("credits"), meters=data["meters"],
            expires_in=timedelta(seconds=data["expires_in"]), name=data["name"], actor=request.auth,
        )
        return Response({**serializers.SpendingTokenSerializer(token).data, "token": secret},
                        status=status.HTTP_201_CREATED)


class HoldTokenView(UsageAPIView):
    @extend_schema(
        summary="Revoke a spending token at once (harmless twice)",
        request=None, responses={200: serializers.SpendingTokenSerializer, **ERRORS, **NOT_FOUND},
    )
    def delete(self, request, hold_id: int, token_id: int):
        token = services.spending_token_revoke(org=self.org, hold_id=hold_id, token_id=token_id, actor=request.auth)
        return Response(serializers.SpendingTokenSerializer(token).data)


# --- estimates ------------------------------------------------------------------


class EstimateView(UsageAPIView):
    @extend_schema(
        summary="What a workflow or a list of meter quantities would cost",
        description="Credits and money (at the pack price of $0.01 per credit, rounded half up to the cent) as a "
                    "low-high range, on the org's plan. With `\"reserve\": true` (a quote) it also holds the upper "
                    "bound (201, with `hold`; 402 as a hold when it cannot be covered): usage recorded against the "
                    "hold (`hold_id`) or captured with events is priced at the rates of this moment, even if the "
                    "rate card changes during the run.",
        request=serializers.EstimateRequestSerializer,
        responses={200: serializers.EstimateResponseSerializer, 201: serializers.QuoteResponseSerializer, **ERRORS,
                   **FEATURE, **PAYMENT, **CONFLICT},
        examples=[
            OpenApiExample("A workflow", request_only=True, value={"workflow": "thread"}),
            OpenApiExample("A quote", request_only=True, value={"workflow": "thread", "reserve": True,
                                                                 "idempotency_key": "run-8731"}),
            OpenApiExample("Quantities", request_only=True, value={"items": [
                {"meter": "ai.output_tokens", "model": "gpt-5-mini", "low": 1000, "high": 4000},
                {"meter": "action.large", "quantity": 1}]}),
            OpenApiExample("Estimate", response_only=True, value={
                "workflow": "tweet", "credits": {"low": "1.1", "high": "1.207"},
                "money": {"currency": "usd", "low": "0.01", "high": "0.01"}, "usd_per_credit": "0.01",
                "items": [{"meter": "action.small", "model": "", "low": "1", "high": "1", "credits_per_unit": "1",
                           "credits_low": "1", "credits_high": "1"}]}),
        ],
    )
    def post(self, request):
        data = self.parse(serializers.EstimateRequestSerializer, request.data)
        if data["reserve"]:
            quote = services.quote_create(
                org=self.org, idempotency_key=data["idempotency_key"], workflow=data.get("workflow"),
                items=data.get("items"), billing_mode=data["billing_mode"], member=self.member(data.get("member")),
                expires_in=timedelta(seconds=data["expires_in"]), workflow_run_id=data["workflow_run_id"],
                request_fingerprint=parsers.request_fingerprint(request.data), actor=request.auth,
            )
            return Response({**serializers.estimate_data(quote.estimate),
                             "hold": serializers.HoldSerializer(quote.hold).data}, status=status.HTTP_201_CREATED)
        estimate = selectors.estimate(
            plan_code=selectors.account_for(self.org.pk).plan_code, workflow=data.get("workflow"), items=data.get("items"),
            billing_mode=data["billing_mode"],
        )
        return Response(serializers.estimate_data(estimate))


# --- ledger and usage summary ----------------------------------------------------


class LedgerPagination(CursorPagination):
    ordering = ("-created_at", "-id")
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500

    def decode_cursor(self, request):
        # A cursor this API did not give is bad input, not a missing object.
        try:
            return super().decode_cursor(request)
        except DRFNotFound:
            raise ValidationError({"cursor": ["Not a cursor this API gave: follow `next` or `previous`."]}) from None


class LedgerView(UsageAPIView, ListAPIView):
    serializer_class = serializers.LedgerEntrySerializer
    pagination_class = LedgerPagination

    def get_queryset(self):
        query = serializers.LedgerQuerySerializer(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        return selectors.ledger_entries(account_id=selectors.account_for(self.org.pk).pk, **query.validated_data)

    @extend_schema(
        summary="The org's ledger, newest first (cursor-paginated)",
        parameters=[serializers.LedgerQuerySerializer],
        responses={200: serializers.LedgerEntrySerializer(many=True), **ERRORS},
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class UsageSummaryView(UsageAPIView):
    @extend_schema(
        summary="Usage totals per day, week or month, grouped by meter, model, member or workflow run",
        parameters=[serializers.UsageSummaryQuerySerializer],
        responses={200: serializers.UsageSummarySerializer, **ERRORS},
        examples=[OpenApiExample("By meter", response_only=True, value={
            "period": "day", "group_by": "meter", "since": "2026-11-01T00:00:00Z", "until": "2026-11-21T00:00:00Z",
            "rows": [{"period_start": "2026-11-20T00:00:00Z", "key": "ai.output_tokens", "meter": "ai.output_tokens", "quantity": "124000",
                      "credits": "37.2", "events": 10}]})],
    )
    def get(self, request):
        query = serializers.UsageSummaryQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        q = query.validated_data
        rows = selectors.usage_series(self.org, period=q["period"], group_by=q["group_by"], since=q["since"], until=q["until"])
        return Response({
            "period": q["period"], "group_by": q["group_by"],
            "since": iso_z(q["since"]), "until": iso_z(q["until"]),
            "rows": serializers.UsageRowSerializer(rows, many=True).data,
        })


# --- run receipts -------------------------------------------------------------------

RECEIPT_EXAMPLE = {
    "workflow_run_id": "run-8731", "receipt_url": "https://billing.example.com/billing/usage/runs/run-8731/?org=acme",
    "first_at": "2026-11-21T06:13:14Z", "last_at": "2026-11-21T06:13:52Z",
    "totals": {"credits": "6.22", "events": 2, "events_credits": "6.22", "captured_without_events": "0",
               "paid_by_organization": "6.22", "paid_by_members": "0",
               "money": {"currency": "usd", "amount": "0.06", "credit_price": "0.01"}},
    "by_meter": [{"meter": "ai.output_tokens", "name": "AI output tokens", "unit": "token", "quantity": "12400",
                  "credits": "3.72", "events": 1},
                 {"meter": "action.medium", "name": "Medium actions", "unit": "action", "quantity": "1",
                  "credits": "2.5", "events": 1}],
    "lines": [{"event_id": 981, "occurred_at": "2026-11-21T06:13:14Z", "meter": "ai.output_tokens",
               "model": "gpt-5-mini", "quantity": "12400", "credits_per_unit": "0.0003", "credits": "3.72",
               "billing_mode": "platform_key", "member": "ada@example.com", "paid_by": "organization",
               "hold_id": 12, "spending_token": "tgs_Q3xv81Lk", "idempotency_key": "run-8731:llm-1"}],
    "lines_truncated": False,
    "holds": [{"id": 12, "parent_id": None, "workflow_run_id": "run-8731", "status": "captured", "reserved": "50",
               "captured": "6.22", "captured_without_events": "0", "prices_locked": False, "events": 2,
               "other_run_events": 0, "member": "ada@example.com", "paid_by": "organization",
               "created_at": "2026-11-21T06:13:10Z", "closed_at": "2026-11-21T06:13:53Z",
               "expires_at": "2026-11-21T06:28:10Z"}],
    "tokens": [{"prefix": "tgs_Q3xv81Lk", "name": "search-tool", "hold_id": 12, "credits": "10", "spent": "3.72",
                "status": "hold_closed", "expires_at": "2026-11-21T06:28:10Z", "events": 1,
                "events_credits": "3.72"}],
}


class RunReceiptView(UsageAPIView):
    @extend_schema(
        summary="An itemised receipt of one workflow run",
        description="Every usage event recorded with this `workflow_run_id` (meter, model, quantity, credits, "
                    "who paid, the hold and spending token it was recorded with), the holds reserved for the "
                    "run, charged by its events or carved out of those (`parent_id`, `prices_locked` for a "
                    "quote), the spending tokens that recorded its events, and the totals in credits and "
                    "money at the list price of a credit. The total is what the ledger debited for the run: "
                    "its events, and what its holds captured beyond the events recorded against them. In `member_usage: personal` the lines "
                    "and totals say a member paid (`paid_by`), never their balance. An unknown run, or "
                    "another organization's, is 404 `run_not_found`.",
        responses={200: serializers.ReceiptSerializer, **ERRORS,
                   404: OpenApiResponse(description="run_not_found")},
        examples=[OpenApiExample("Receipt", response_only=True, value=RECEIPT_EXAMPLE)],
    )
    def get(self, request, workflow_run_id: str):
        return Response(serializers.receipt_data(selectors.run_receipt(self.org, workflow_run_id)))


# --- transfers ------------------------------------------------------------------


class TransferView(UsageAPIView):
    @extend_schema(
        summary="Send purchased credits to another organization",
        description="Only credits bought (purchase, auto top-up) can be sent, never trial, plan, promo, adjustment "
                    "or received credits; the receiver cannot send them on. Once per idempotency key.",
        request=serializers.TransferCreateSerializer,
        responses={201: serializers.TransferSerializer, **ERRORS, **PAYMENT, **NOT_FOUND, **CONFLICT},
        examples=[OpenApiExample("Coffee", request_only=True, value={
            "idempotency_key": "coffee-42", "to_org": "globex", "credits": "500", "note": "Thanks for the help!"})],
    )
    def post(self, request):
        data = self.parse(serializers.TransferCreateSerializer, request.data)
        to_org = Organization.objects.filter(slug=data["to_org"]).first()
        if to_org is None:
            raise NotFound("No organization with that slug.", code="org_not_found")
        transfer = services.credits_transfer(
            from_org=self.org, to_org=to_org, amount_micros=data["credits"], idempotency_key=data["idempotency_key"],
            note=data["note"], actor=request.auth,
        )
        return Response(serializers.TransferSerializer(transfer).data, status=status.HTTP_201_CREATED)



# --- provider keys (billing mode "own key") ------------------------------------------


class ProviderKeysView(UsageAPIView):
    write_scope = "billing:write"

    @extend_schema(summary="The org's registered provider keys", responses={200: serializers.ProviderKeySerializer(many=True), **ERRORS})
    def get(self, request):
        keys = selectors.provider_keys(self.org, include_revoked=request.query_params.get("revoked") == "true")
        return Response(serializers.ProviderKeySerializer(keys, many=True).data)

    @extend_schema(
        summary="Register a provider key the org brings (billed compute-only)",
        description="Send only the provider, a label and the key's last four characters; Tollgate never receives "
                    "the secret. Usage events naming the key's id are billed compute-only. Needs `billing:write`.",
        request=serializers.ProviderKeyCreateSerializer,
        responses={201: serializers.ProviderKeySerializer, **ERRORS},
        examples=[OpenApiExample("OpenAI key", request_only=True,
                                 value={"provider": "openai", "label": "production", "last_four": "x9Qz"})],
    )
    def post(self, request):
        data = self.parse(serializers.ProviderKeyCreateSerializer, request.data)
        key = services.provider_key_create(org=self.org, actor=request.auth, **data)
        return Response(serializers.ProviderKeySerializer(key).data, status=status.HTTP_201_CREATED)


class ProviderKeyRevokeView(UsageAPIView):
    write_scope = "billing:write"

    @extend_schema(
        summary="Revoke a provider key: usage after now that names it is billed in full",
        request=None, responses={200: serializers.ProviderKeySerializer, **ERRORS, **NOT_FOUND},
    )
    def post(self, request, key_id: int):
        key = services.provider_key_revoke(org=self.org, key_id=key_id, actor=request.auth)
        return Response(serializers.ProviderKeySerializer(key).data)


class ApiKeyResumeView(UsageAPIView):
    write_scope = "billing:write"

    @extend_schema(
        summary="Resume an API key the runaway breaker paused",
        description="Call it with another, unpaused key of the organization (a paused key is refused with 402 "
                    "usage_paused). Another organization's key is 404; a key not paused is answered as it is. "
                    "Needs `billing:write`.",
        request=None,
        responses={200: serializers.PausableApiKeySerializer, **ERRORS, **PAYMENT, **NOT_FOUND},
    )
    def post(self, request, prefix: str):
        key = services.api_key_resume(org=self.org, prefix=prefix, actor=request.auth)
        return Response(serializers.PausableApiKeySerializer(key).data)
