"""/api/v1/ plans, packages, checkout, portal, subscription and invoices."""

from __future__ import annotations

from djstripe import models as djstripe_models
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import Scope
from billing import selectors, services
from billing.models import CheckoutKind, Interval
from billing.money import minor_units_str
from billing.services.checkout import RETURN_PAGES
from billing.stripe_data import invoice_discount_cents, timestamp
from usage.units import AmountError, credits_str, credits_to_micros

# --- catalog -----------------------------------------------------------------


class PlanPriceSerializer(serializers.Serializer):
    interval = serializers.ChoiceField(choices=Interval.choices)
    price = serializers.CharField(help_text="Decimal string in the currency's major unit, e.g. \"9.99\".")
    price_cents = serializers.IntegerField()
    currency = serializers.CharField()
    allowance = serializers.CharField(help_text="Credits granted each period (decimal string).")

    def to_representation(self, price):
        return {
            "interval": price.interval, "price": minor_units_str(price.amount_cents),
            "price_cents": price.amount_cents, "currency": price.currency,
            "allowance": credits_str(price.allowance_micros),
        }


class PlanSerializer(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()
    description = serializers.CharField()
    features = serializers.ListField(child=serializers.CharField())
    overage_allowed = serializers.BooleanField()
    trial_days = serializers.IntegerField()
    prices = PlanPriceSerializer(many=True)

    def to_representation(self, plan):
        return {
            "code": plan.code, "name": plan.name, "description": plan.description, "features": plan.features,
            "overage_allowed": plan.overage_allowed, "trial_days": plan.trial_days,
            "prices": [PlanPriceSerializer(p).data for p in plan.prices.all() if p.active],
        }


class PackSerializer(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()
    credits = serializers.CharField(help_text="Credits in the pack (decimal string).")
    price = serializers.CharField()
    price_cents = serializers.IntegerField()
    currency = serializers.CharField()

    def to_representation(self, pack):
        return {
            "code": pack.code, "name": pack.name, "credits": credits_str(pack.credits_micros),
            "price": minor_units_str(pack.amount_cents), "price_cents": pack.amount_cents,
            "currency": pack.currency,
        }


class PlanListSerializer(serializers.Serializer):
    data = PlanSerializer(many=True)


class PackListSerializer(serializers.Serializer):
    data = PackSerializer(many=True)


class PlansView(APIView):
    """The plans, each with its monthly and yearly price and allowance."""

    @extend_schema(responses=PlanListSerializer, summary="List the plans")
    def get(self, request):
        return Response({"data": [PlanSerializer(p).data for p in selectors.plans_active()]})


class PackagesView(APIView):
    """Credit packs for one-off purchase."""

    @extend_schema(responses=PackListSerializer, summary="List the credit packs")
    def get(self, request):
        return Response({"data": [PackSerializer(p).data for p in selectors.packs_active()]})


# --- entitlements ------------------------------------------------------------


class LimitSerializer(serializers.Serializer):
    limit = serializers.IntegerField(allow_null=True, help_text="The plan's cap per organization; null: no cap.")
    used = serializers.IntegerField()
    remaining = serializers.IntegerField(allow_null=True, help_text="What can still be added; null: no cap.")


class MembersLimitSerializer(LimitSerializer):
    pending_invitations = serializers.IntegerField(help_text="Open invitations: each holds a seat under the cap.")


class CreditsLimitSerializer(serializers.Serializer):
    available = serializers.CharField(help_text="Credits that can be spent now: balance less holds (decimal string).")
    balance = serializers.CharField()
    held = serializers.CharField()
    overage_allowed = serializers.BooleanField(help_text="Usage past zero is billed in arrears instead of refused.")
    allowance = serializers.CharField(allow_null=True, help_text="Credits the current period (or trial) brought.")
    allowance_used = serializers.CharField(allow_null=True)
    allowance_period_end = serializers.DateTimeField(allow_null=True)


class EntitlementLimitsSerializer(serializers.Serializer):
    credits = CreditsLimitSerializer()
    members = MembersLimitSerializer()
    api_keys = LimitSerializer()


class GatedMeterSerializer(serializers.Serializer):
    meter = serializers.CharField()
    name = serializers.CharField()
    required_feature = serializers.CharField()
    allowed = serializers.BooleanField(help_text="Whether the plan in force includes the feature.")


class EntitlementsSerializer(serializers.Serializer):
    plan = serializers.CharField()
    plan_name = serializers.CharField()
    status = serializers.CharField(help_text="The subscription's status, as GET /subscription answers it: free, "
                                             "trialing, active or past_due.")
    features = serializers.ListField(child=serializers.CharField(), help_text="Feature codes of the plan in force.")
    limits = EntitlementLimitsSerializer()
    meters = GatedMeterSerializer(many=True, help_text="Meters that need a plan feature, and whether this plan has it.")


def entitlements_data(ent: selectors.Entitlements) -> dict:
    """The API's shape of `billing.selectors.entitlements`."""
    dt = serializers.DateTimeField()
    allowance = ent.credits.allowance

    def limit(resource: str) -> dict:
        use = ent.limit(resource)
        return {"limit": use.limit, "used": use.used, "remaining": use.remaining}

    return {
        "plan": ent.plan_code, "plan_name": ent.plan_name, "status": ent.status, "features": ent.features,
        "limits": {
            "credits": {
                "available": credits_str(ent.credits.available_micros), "balance": credits_str(ent.credits.balance_micros),
                "held": credits_str(ent.credits.held_micros), "overage_allowed": ent.credits.overage_allowed,
                "allowance": credits_str(allowance.amount_micros) if allowance else None,
                "allowance_used": credits_str(allowance.used_micros) if allowance else None,
                "allowance_period_end": dt.to_representation(allowance.period_end) if allowance and allowance.period_end
                else None,
            },
            "members": {**limit("members"), "pending_invitations": ent.limit("members").pending},
            "api_keys": limit("api_keys"),
        },
        "meters": [{"meter": m.code, "name": m.name, "required_feature": m.required_feature, "allowed": m.allowed}
                   for m in ent.meters],
    }


class EntitlementsView(APIView):
    """The plan in force, its features, and the limits it carries with what is used of each."""

    @extend_schema(responses=EntitlementsSerializer, summary="The plan's features and limits, and their use")
    def get(self, request):
        return Response(entitlements_data(selectors.entitlements(request.auth.org)))


class EntitlementCheckRequestSerializer(serializers.Serializer):
    feature = serializers.CharField(max_length=64, help_text="A feature code, e.g. media_generation.")


class EntitlementCheckResponseSerializer(serializers.Serializer):
    allowed = serializers.BooleanField()
    feature = serializers.CharField()
    plan = serializers.CharField()


class EntitlementCheckView(APIView):
    """May this org use a feature? 200 if its plan includes it, else 403 with the plan that does."""

    write_scope = Scope.READ  # a question: any key that may read may ask it

    @extend_schema(
        request=EntitlementCheckRequestSerializer, summary="Check a feature against the plan in force",
        responses={
            200: EntitlementCheckResponseSerializer,
            400: OpenApiResponse(description="invalid_request (no feature) or unknown_feature: no plan knows the code"),
            403: OpenApiResponse(description="feature_not_in_plan, with required_feature, plan, upgrade_plan, "
                                             "upgrade_plan_name and upgrade_url; or permission_denied"),
        },
    )
    def post(self, request):
        body = EntitlementCheckRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        feature = body.validated_data["feature"]
        selectors.feature_check(request.auth.org, feature)
        return Response({"allowed": True, "feature": feature, "plan": selectors.plan_code_of(request.auth.org)})


# --- checkout and portal -----------------------------------------------------

STRIPE_ERRORS = {
    502: OpenApiResponse(description="payment_provider_error: Stripe refused or could not be reached"),
    503: OpenApiResponse(description="stripe_not_configured (no Stripe keys on this Tollgate) or catalog_not_synced"),
}


class CheckoutRequestSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=CheckoutKind.choices)
    code = serializers.CharField(
        max_length=32, required=False, default="",
        help_text="A plan code (starter, pro, max) or a pack code (pack_500, ...); not for kind=credits.",
    )
    credits = serializers.CharField(
        max_length=32, required=False,
        help_text="kind=credits: how many credits to buy, a whole number within the top-up limits, at the list price.",
    )
    interval = serializers.ChoiceField(choices=Interval.choices, default=Interval.MONTH, help_text="For plans.")
    return_to = serializers.ChoiceField(
        choices=sorted(RETURN_PAGES), default="overview",
        help_text="The page Stripe sends the buyer back to; success and cancel URLs are built from it on the server.",
    )


class CheckoutResponseSerializer(serializers.Serializer):
    url = serializers.CharField(help_text="Send the buyer here: Stripe Checkout (or the demo's simulated payment).")
    session_id = serializers.CharField()
    simulated = serializers.BooleanField()


class PortalRequestSerializer(serializers.Serializer):
    return_to = serializers.ChoiceField(choices=sorted(RETURN_PAGES), default="overview")


class PortalResponseSerializer(serializers.Serializer):
    url = serializers.CharField()


class CheckoutView(APIView):
    """Start a Stripe Checkout for a plan (subscription) or a credit pack (one-off payment)."""

    write_scope = Scope.BILLING_WRITE

    @extend_schema(
        request=CheckoutRequestSerializer, summary="Start a checkout",
        responses={201: CheckoutResponseSerializer, **STRIPE_ERRORS,
                   400: OpenApiResponse(description="invalid_request, free_plan, invalid_return_to, invalid_interval, "
                                                    "amount_out_of_range, invalid_amount"),
                   404: OpenApiResponse(description="unknown_catalog_item"),
                   409: OpenApiResponse(description="already_subscribed: change plans in the portal")},
    )
    def post(self, request):
        body = CheckoutRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        credits = data.pop("credits", None)
        if credits is not None:
            try:
                data["credits_micros"] = credits_to_micros(credits)
            except AmountError as error:
                raise serializers.ValidationError({"credits": [str(error)]}) from None
        result = services.checkout_start(org=request.auth.org, actor=request.auth, **data)
        return Response({"url": result.url, "session_id": result.session_id, "simulated": result.simulated}, status=201)


class PortalView(APIView):
    """A Stripe customer portal link: payment methods, plan changes, cancellation, invoices."""

    write_scope = Scope.BILLING_WRITE

    @extend_schema(request=PortalRequestSerializer, responses={201: PortalResponseSerializer, **STRIPE_ERRORS},
                   summary="Open the customer portal")
    def post(self, request):
        body = PortalRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        url = services.portal_start(org=request.auth.org, actor=request.auth, **body.validated_data)
        return Response({"url": url}, status=201)


# --- subscription and invoices -------------------------------------------------


class AutoTopUpSerializer(serializers.Serializer):
    enabled = serializers.BooleanField()
    threshold = serializers.CharField()
    pack = serializers.CharField()
    monthly_cap_cents = serializers.IntegerField()
    spent_this_month_cents = serializers.IntegerField()
    paused_reason = serializers.CharField()


class SubscriptionSerializer(serializers.Serializer):
    plan = serializers.CharField()
    plan_name = serializers.CharField()
    features = serializers.ListField(child=serializers.CharField())
    status = serializers.ChoiceField(choices=["free", "trialing", "active", "past_due"])
    interval = serializers.ChoiceField(choices=Interval.choices, allow_null=True,
                                       help_text="The billing interval of a paid or Free period; null during a trial.")
    allowance = serializers.CharField(allow_null=True, help_text="Credits per period of the plan in force; during a trial, "
                                                                "the trial's allowance.")
    overage_allowed = serializers.BooleanField()
    trial_ends_at = serializers.DateTimeField(allow_null=True)
    trial_days_left = serializers.IntegerField(allow_null=True)
    current_period_start = serializers.DateTimeField(allow_null=True)
    current_period_end = serializers.DateTimeField(allow_null=True)
    cancel_at_period_end = serializers.BooleanField()
    grace_ends_at = serializers.DateTimeField(allow_null=True, help_text="When a failed renewal downgrades to Free.")
    stripe_configured = serializers.BooleanField()
    simulated_payments = serializers.BooleanField()
    auto_top_up = AutoTopUpSerializer(allow_null=True)


class SubscriptionView(APIView):
    """The organization's plan, status, trial, period, grace period and auto top-up."""

    @extend_schema(responses=SubscriptionSerializer, summary="The current subscription")
    def get(self, request):
        org = request.auth.org
        state = services.billing_state_for(org)
        sub = selectors.subscription_for(org, state)
        topup = selectors.auto_topup_status(org)
        dt = serializers.DateTimeField()

        def when(value):
            return dt.to_representation(value) if value else None

        return Response({
            "plan": state.plan_code, "plan_name": sub.plan.name if sub.plan else state.plan_code,
            "features": sub.plan.features if sub.plan else [], "status": state.status,
            "interval": state.interval if state.interval and state.status != "trialing" else None,
            "allowance": credits_str(sub.allowance_micros) if sub.allowance_micros is not None else None,
            "overage_allowed": bool(sub.plan and sub.plan.overage_allowed),
            "trial_ends_at": when(state.trial_ends_at if state.status == "trialing" else None),
            "trial_days_left": sub.trial_days_left,
            "current_period_start": when(state.current_period_start), "current_period_end": when(state.current_period_end),
            "cancel_at_period_end": state.cancel_at_period_end, "grace_ends_at": when(state.grace_ends_at),
            "stripe_configured": sub.stripe_configured, "simulated_payments": sub.simulated,
            "auto_top_up": {
                "enabled": topup.settings.enabled, "threshold": credits_str(topup.settings.threshold_micros),
                "pack": topup.settings.pack.code, "monthly_cap_cents": topup.settings.monthly_cap_cents,
                "spent_this_month_cents": topup.spent_cents, "paused_reason": topup.settings.paused_reason,
            } if topup else None,
        })


class InvoiceSerializer(serializers.Serializer):
    id = serializers.CharField()
    number = serializers.CharField(allow_null=True)
    status = serializers.CharField()
    currency = serializers.CharField()
    subtotal_cents = serializers.IntegerField()
    tax_cents = serializers.IntegerField()
    total_cents = serializers.IntegerField()
    amount_paid_cents = serializers.IntegerField()
    amount_due_cents = serializers.IntegerField()
    discount_cents = serializers.IntegerField(help_text="Taken off by promotion codes and coupons; `total_cents` is after it.")
    created = serializers.DateTimeField()
    period_start = serializers.DateTimeField(allow_null=True)
    period_end = serializers.DateTimeField(allow_null=True)
    hosted_invoice_url = serializers.CharField(allow_null=True)
    invoice_pdf = serializers.CharField(allow_null=True)

    def to_representation(self, invoice: djstripe_models.Invoice):
        data = invoice.stripe_data
        taxes = data.get("total_taxes")
        tax = sum(int(t.get("amount") or 0) for t in taxes) if isinstance(taxes, list) else int(data.get("tax") or 0)
        dt = serializers.DateTimeField()

        def when(value):
            moment = timestamp(value)
            return dt.to_representation(moment) if moment else None

        return {
            "id": data.get("id"), "number": data.get("number"), "status": data.get("status") or "",
            "currency": data.get("currency") or "", "subtotal_cents": int(data.get("subtotal") or 0),
            "tax_cents": tax, "total_cents": int(data.get("total") or 0),
            "amount_paid_cents": int(data.get("amount_paid") or 0), "amount_due_cents": int(data.get("amount_due") or 0),
            "discount_cents": invoice_discount_cents(data),
            "created": when(data.get("created")), "period_start": when(data.get("period_start")),
            "period_end": when(data.get("period_end")), "hosted_invoice_url": data.get("hosted_invoice_url"),
            "invoice_pdf": data.get("invoice_pdf"),
        }


class InvoiceListSerializer(serializers.Serializer):
    data = InvoiceSerializer(many=True)
    has_more = serializers.BooleanField()


class InvoicesView(APIView):
    """The organization's invoices and pack receipts, newest first."""

    @extend_schema(
        parameters=[
            OpenApiParameter("limit", int, description="1 to 100, default 20."),
            OpenApiParameter("starting_after", str, description="The last invoice id of the previous page."),
        ],
        responses={200: InvoiceListSerializer,
                   404: OpenApiResponse(description="invoice_not_found: `starting_after` names no invoice of this org")},
        summary="List invoices",
    )
    def get(self, request):
        try:
            limit = min(max(int(request.query_params.get("limit", 20)), 1), 100)
        except ValueError:
            raise serializers.ValidationError({"limit": ["A whole number from 1 to 100."]}) from None
        invoices = selectors.invoices_for(
            request.auth.org, limit=limit + 1, starting_after=request.query_params.get("starting_after") or None
        )
        return Response({
            "data": [InvoiceSerializer(i).data for i in invoices[:limit]], "has_more": len(invoices) > limit,
        })
