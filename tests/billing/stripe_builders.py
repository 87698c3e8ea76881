"""Stripe-shaped objects for tests, with per-test overrides.

Each builder returns a dict with the fields Stripe's API returns for that
resource at the API version dj-stripe pins (2026 "dahlia"): the ones Tollgate
or dj-stripe read carry realistic values, the rest Stripe's empty defaults.
test_stripe_builders.py checks the field sets against Stripe's published
examples (../shared/stripe/fixtures3.json) when that file is present.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

from djstripe.settings import djstripe_settings

_counter = itertools.count(1)


def new_id(prefix: str) -> str:
    return f"{prefix}_test{next(_counter):06d}{int(time.time() * 1000) % 100000:05d}"


def now() -> int:
    return int(time.time())


def _build(base: dict[str, Any], nulls: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """`base` with every field named in `nulls` defaulted to None, then `overrides` on top."""
    data = {name: None for name in nulls.split()}
    data.update(base)
    unknown = set(overrides) - set(data)
    if unknown:
        raise KeyError(f"Not a field of this Stripe object: {sorted(unknown)}")
    data.update(overrides)
    return data


def address() -> dict:
    return {"city": None, "country": None, "line1": None, "line2": None, "postal_code": None, "state": None}


def stripe_list(data: list, url: str) -> dict:
    return {"object": "list", "data": data, "has_more": False, "url": url}


# --- the account and its set-up -------------------------------------------------


def account(**overrides) -> dict:
    return _build({
        "id": new_id("acct"), "object": "account", "business_type": "company", "charges_enabled": True,
        "payouts_enabled": True, "details_submitted": True, "country": "US", "default_currency": "usd",
        "email": "billing@tollgate.test", "created": now(), "metadata": {}, "type": "standard",
        "capabilities": {"card_payments": "active", "transfers": "active"},
        "business_profile": {"name": "Tollgate Test", "url": None, "support_email": None, "support_phone": None,
                             "support_url": None, "product_description": None, "mcc": None,
                             "support_address": address(), "annual_revenue": None, "estimated_worker_count": None,
                             "minority_owned_business_designation": None},
        "settings": {"dashboard": {"display_name": "Tollgate Test", "timezone": "Etc/UTC"},
                     "branding": {"icon": None, "logo": None, "primary_color": None, "secondary_color": None}},
        "controller": {"type": "account"},
        "external_accounts": stripe_list([], "/v1/accounts/acct/external_accounts"),
        "requirements": {"alternatives": [], "current_deadline": None, "currently_due": [], "disabled_reason": None,
                         "errors": [], "eventually_due": [], "past_due": [], "pending_verification": []},
        "future_requirements": {"alternatives": [], "current_deadline": None, "currently_due": [],
                                "disabled_reason": None, "errors": [], "eventually_due": [], "past_due": [],
                                "pending_verification": []},
        "tos_acceptance": {"date": None, "ip": None, "user_agent": None},
    }, "", overrides)


def webhook_endpoint(**overrides) -> dict:
    return _build({
        "id": new_id("we"), "object": "webhook_endpoint", "api_version": djstripe_settings.STRIPE_API_VERSION,
        "created": now(), "description": "Tollgate", "enabled_events": ["*"], "livemode": False, "metadata": {},
        "status": "enabled", "url": "https://billing.example.test/stripe/webhook/x/",
    }, "application", overrides)


# --- catalog ----------------------------------------------------------------------


def product(**overrides) -> dict:
    return _build({
        "id": new_id("prod"), "object": "product", "active": True, "created": now(), "updated": now(),
        "description": None, "images": [], "livemode": False, "marketing_features": [], "metadata": {},
        "name": "Tollgate product", "type": "service",
    }, "default_price package_dimensions shippable statement_descriptor tax_code unit_label url", overrides)


def price(**overrides) -> dict:
    return _build({
        "id": new_id("price"), "object": "price", "active": True, "billing_scheme": "per_unit", "created": now(),
        "currency": "usd", "livemode": False, "metadata": {}, "product": "prod_x", "recurring": None,
        "tax_behavior": "exclusive", "type": "one_time", "unit_amount": 500, "unit_amount_decimal": "500",
    }, "custom_unit_amount lookup_key nickname tiers_mode transform_quantity", overrides)


def meter(**overrides) -> dict:
    return _build({
        "id": new_id("mtr"), "object": "billing.meter", "created": now(), "updated": now(),
        "customer_mapping": {"event_payload_key": "stripe_customer_id", "type": "by_id"},
        "default_aggregation": {"formula": "sum"}, "display_name": "Tollgate overage (credits)",
        "event_name": "tollgate_overage_credits", "livemode": False, "status": "active",
        "status_transitions": {"deactivated_at": None}, "value_settings": {"event_payload_key": "value"},
    }, "event_time_window", overrides)


def meter_event(**overrides) -> dict:
    return _build({
        "object": "billing.meter_event", "created": now(), "event_name": "tollgate_overage_credits",
        "identifier": new_id("mev"), "livemode": False, "payload": {}, "timestamp": now(),
    }, "", overrides)


# --- customers and payment methods -----------------------------------------------


def customer(**overrides) -> dict:
    return _build({
        "id": new_id("cus"), "object": "customer", "address": address(), "balance": 0, "created": now(),
        "currency": "usd", "delinquent": False, "email": None, "invoice_prefix": "TOLL0001",
        "invoice_settings": {"custom_fields": None, "default_payment_method": None, "footer": None,
                             "rendering_options": None},
        "livemode": False, "metadata": {}, "name": None, "next_invoice_sequence": 1, "preferred_locales": [],
        "shipping": None, "tax_exempt": "none",
    }, "default_source description discount phone test_clock", overrides)


def payment_method(**overrides) -> dict:
    return _build({
        "id": new_id("pm"), "object": "payment_method", "allow_redisplay": "always",
        "billing_details": {"address": address(), "email": None, "name": "Jenny Rosen", "phone": None, "tax_id": None},
        "card": {"brand": "visa", "country": "US", "exp_month": 12, "exp_year": 2034, "fingerprint": "fp_test",
                 "funding": "credit", "last4": "4242", "networks": {"available": ["visa"], "preferred": None},
                 "checks": {"address_line1_check": None, "address_postal_code_check": None, "cvc_check": "pass"},
                 "generated_from": None, "wallet": None, "display_brand": "visa", "regulated_status": "unregulated",
                 "three_d_secure_usage": {"supported": True}},
        "created": now(), "customer": None, "livemode": False, "metadata": {}, "type": "card",
    }, "customer_account", overrides)


# --- checkout, subscriptions, invoices --------------------------------------------


def checkout_session(**overrides) -> dict:
    return _build({
        "id": new_id("cs"), "object": "checkout.session", "automatic_tax": {"enabled": True, "liability": {"type": "self"},
                                                                             "status": "complete", "provider": "stripe"},
        "cancel_url": "http://testserver/billing/checkout/canceled/", "created": now(), "currency": "usd",
        "custom_fields": [], "custom_text": {"after_submit": None, "shipping_address": None, "submit": None,
                                             "terms_of_service_acceptance": None},
        "customer_details": {"address": address(), "email": "owner@acme.test", "name": None, "phone": None,
                             "tax_exempt": "none", "tax_ids": [], "business_name": None, "individual_name": None},
        "expires_at": now() + 86400, "livemode": False, "metadata": {}, "mode": "payment",
        "payment_method_options": {}, "payment_method_types": ["card"], "payment_status": "unpaid",
        "phone_number_collection": {"enabled": False}, "shipping_options": [], "status": "open",
        "success_url": "http://testserver/billing/checkout/done/?session_id={CHECKOUT_SESSION_ID}",
        "url": "https://checkout.stripe.com/c/pay/cs_test", "ui_mode": "hosted",
        "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
        "amount_subtotal": 0, "amount_total": 0,
    }, (
        "adaptive_pricing after_expiration allow_promotion_codes billing_address_collection client_reference_id "
        "client_secret collected_information consent consent_collection currency_conversion customer "
        "customer_account customer_creation customer_email discounts integration_identifier invoice "
        "invoice_creation locale managed_payments origin_context payment_intent payment_link "
        "payment_method_collection payment_method_configuration_details permissions recovered_from "
        "saved_payment_method_options setup_intent shipping_address_collection shipping_cost submit_type "
        "subscription wallet_options"
    ), overrides)


def subscription_item(*, price_data: dict, subscription_id: str, period_start: int, period_end: int, **overrides) -> dict:
    return _build({
        "id": new_id("si"), "object": "subscription_item", "created": period_start, "discounts": [], "metadata": {},
        "price": price_data, "quantity": 1 if (price_data.get("recurring") or {}).get("usage_type") != "metered" else None,
        "subscription": subscription_id, "tax_rates": [], "current_period_start": period_start,
        "current_period_end": period_end,
    }, "billing_thresholds plan", overrides)


def subscription(*, prices: list[dict], period_start: int | None = None, period_end: int | None = None,
                 **overrides) -> dict:
    start = period_start or now()
    end = period_end or start + 30 * 86400
    sub_id = overrides.pop("id", None) or new_id("sub")
    items = [subscription_item(price_data=p, subscription_id=sub_id, period_start=start, period_end=end) for p in prices]
    return _build({
        "id": sub_id, "object": "subscription",
        "automatic_tax": {"enabled": True, "liability": {"type": "self"}, "disabled_reason": None},
        "billing_cycle_anchor": start, "billing_cycle_anchor_config": None, "billing_mode": {"type": "classic"},
        "cancel_at_period_end": False, "cancellation_details": {"comment": None, "feedback": None, "reason": None},
        "collection_method": "charge_automatically", "created": start, "currency": "usd", "customer": "cus_x",
        "default_tax_rates": [], "discounts": [],
        "invoice_settings": {"account_tax_ids": None, "issuer": {"type": "self"}},
        "items": stripe_list(items, f"/v1/subscription_items?subscription={sub_id}"),
        "livemode": False, "metadata": {},
        "payment_settings": {"payment_method_options": None, "payment_method_types": None,
                             "save_default_payment_method": "on_subscription"},
        "start_date": start, "status": "active",
        "trial_settings": {"end_behavior": {"missing_payment_method": "create_invoice"}},
    }, (
        "application application_fee_percent billing_schedules billing_thresholds cancel_at canceled_at "
        "customer_account days_until_due default_payment_method default_source description ended_at latest_invoice "
        "managed_payments next_pending_invoice_item_invoice on_behalf_of pause_collection pending_invoice_item_interval "
        "pending_setup_intent pending_update schedule test_clock transfer_data trial_end trial_start"
    ), overrides)


def invoice_line(*, price_data: dict, period_start: int, period_end: int, subscription_id: str | None = None,
                 amount: int | None = None, **overrides) -> dict:
    amount = price_data.get("unit_amount") or 0 if amount is None else amount
    return _build({
        "id": new_id("il"), "object": "line_item", "amount": amount, "currency": "usd",
        "description": "1 × Tollgate plan", "discount_amounts": [], "discountable": True, "discounts": [],
        "livemode": False, "metadata": {}, "period": {"start": period_start, "end": period_end}, "quantity": 1,
        "pricing": {"type": "price_details", "price_details": {"price": price_data["id"],
                                                               "product": price_data.get("product")},
                    "unit_amount_decimal": str(amount)},
        "parent": {"type": "subscription_item_details", "invoice_item_details": None,
                   "subscription_item_details": {"invoice_item": None, "proration": False, "proration_details": None,
                                                 "subscription": subscription_id, "subscription_item": new_id("si")}},
        "subtotal": amount, "taxes": [],
    }, "invoice pretax_credit_amounts quantity_decimal subscription", overrides)


def invoice(*, lines: list[dict], subscription_id: str | None = None, **overrides) -> dict:
    invoice_id = overrides.pop("id", None) or new_id("in")
    for line in lines:
        line["invoice"] = invoice_id
    total = sum(line["amount"] for line in lines)
    created = overrides.get("created") or now()
    return _build({
        "id": invoice_id, "object": "invoice", "account_country": "US", "amount_due": total, "amount_overpaid": 0,
        "amount_paid": total, "amount_remaining": 0, "amount_shipping": 0, "attempt_count": 1, "attempted": True,
        "auto_advance": False, "automatic_tax": {"enabled": True, "liability": {"type": "self"}, "status": "complete",
                                                 "disabled_reason": None, "provider": "stripe"},
        "billing_reason": "subscription_cycle", "collection_method": "charge_automatically", "created": created,
        "currency": "usd", "customer": "cus_x", "customer_tax_exempt": "none", "customer_tax_ids": [],
        "default_tax_rates": [], "discounts": [], "effective_at": created,
        "hosted_invoice_url": "https://invoice.stripe.com/i/test", "invoice_pdf": "https://pay.stripe.com/invoice/test/pdf",
        "issuer": {"type": "self"}, "lines": stripe_list(lines, f"/v1/invoices/{invoice_id}/lines"), "livemode": False,
        "metadata": {}, "number": f"TOLL-{next(_counter):04d}",
        "parent": {"type": "subscription_details", "quote_details": None,
                   "subscription_details": {"metadata": {}, "subscription": subscription_id}} if subscription_id else None,
        "period_end": created, "period_start": created, "post_payment_credit_notes_amount": 0,
        "pre_payment_credit_notes_amount": 0, "starting_balance": 0, "status": "paid",
        "status_transitions": {"finalized_at": created, "marked_uncollectible_at": None, "paid_at": created,
                               "voided_at": None},
        "subtotal": total, "subtotal_excluding_tax": total, "total": total, "total_discount_amounts": [],
        "total_excluding_tax": total, "total_taxes": [], "webhooks_delivered_at": created,
    }, (
        "account_name account_tax_ids application automatically_finalizes_at custom_fields customer_account "
        "customer_address customer_email customer_name customer_phone customer_shipping default_payment_method "
        "default_source description due_date ending_balance footer from_invoice last_finalization_error "
        "latest_revision next_payment_attempt on_behalf_of payment_settings receipt_number rendering shipping_cost "
        "shipping_details statement_descriptor subscription test_clock total_pretax_credit_amounts"
    ), overrides)


# --- promotions -------------------------------------------------------------------


def coupon(**overrides) -> dict:
    return _build({
        "id": new_id("co"), "object": "coupon", "amount_off": None, "created": now(), "currency": None,
        "duration": "once", "livemode": False, "metadata": {}, "name": "20% off", "percent_off": 20.0,
        "times_redeemed": 1, "valid": True,
    }, "duration_in_months max_redemptions redeem_by", overrides)


def promotion_code(*, coupon_id: str, **overrides) -> dict:
    return _build({
        "id": new_id("promo"), "object": "promotion_code", "active": True, "code": "FALL20", "created": now(),
        "livemode": False, "metadata": {}, "promotion": {"coupon": coupon_id, "type": "coupon"},
        "restrictions": {"first_time_transaction": False, "minimum_amount": None, "minimum_amount_currency": None},
        "times_redeemed": 1,
    }, "customer customer_account expires_at max_redemptions", overrides)


def discount(*, coupon_id: str, promotion_code_id: str | None = None, **overrides) -> dict:
    """A discount as an invoice's (expanded) `discounts` carry it: the coupon under `source` since 2025."""
    return _build({
        "id": new_id("di"), "object": "discount", "promotion_code": promotion_code_id, "start": now(),
        "source": {"coupon": coupon_id, "type": "coupon"},
    }, "checkout_session customer customer_account end invoice invoice_item subscription subscription_item", overrides)


# --- payments ---------------------------------------------------------------------


def payment_intent(**overrides) -> dict:
    return _build({
        "id": new_id("pi"), "object": "payment_intent", "amount": 500, "amount_capturable": 0,
        "amount_details": {"tip": {}}, "amount_received": 500, "automatic_payment_methods": None,
        "capture_method": "automatic", "client_secret": "pi_secret_test", "confirmation_method": "automatic",
        "created": now(), "currency": "usd", "livemode": False, "metadata": {}, "payment_method_options": {},
        "payment_method_types": ["card"], "status": "succeeded",
    }, (
        "application application_fee_amount canceled_at cancellation_reason customer customer_account description "
        "excluded_payment_method_types last_payment_error latest_charge managed_payments next_action on_behalf_of "
        "payment_method payment_method_configuration_details processing receipt_email review setup_future_usage "
        "shipping source statement_descriptor statement_descriptor_suffix transfer_data transfer_group"
    ), overrides)


def charge(**overrides) -> dict:
    charge_id = overrides.pop("id", None) or new_id("ch")
    return _build({
        "id": charge_id, "object": "charge", "amount": 500, "amount_captured": 500, "amount_refunded": 0,
        "billing_details": {"address": address(), "email": None, "name": "Jenny Rosen", "phone": None, "tax_id": None},
        "captured": True, "created": now(), "currency": "usd", "disputed": False, "fraud_details": {},
        "livemode": False, "metadata": {},
        "outcome": {"advice_code": None, "network_advice_code": None, "network_decline_code": None,
                    "network_status": "approved_by_network", "reason": None, "risk_level": "normal",
                    "seller_message": "Payment complete.", "type": "authorized"},
        "paid": True, "payment_method_details": {"type": "card", "card": {"brand": "visa", "last4": "4242"}},
        "refunded": False, "refunds": stripe_list([], f"/v1/charges/{charge_id}/refunds"), "status": "succeeded",
    }, (
        "application application_fee application_fee_amount balance_transaction calculated_statement_descriptor "
        "customer description failure_balance_transaction failure_code failure_message on_behalf_of payment_intent "
        "payment_method receipt_email receipt_number receipt_url review shipping source source_transfer "
        "statement_descriptor statement_descriptor_suffix transfer_data transfer_group"
    ), overrides)


def refund(**overrides) -> dict:
    return _build({
        "id": new_id("re"), "object": "refund", "amount": 500, "created": now(), "currency": "usd",
        "destination_details": {"type": "card", "card": {"type": "refund"}}, "metadata": {}, "status": "succeeded",
    }, (
        "balance_transaction charge customer customer_account payment_intent payment_method reason receipt_number "
        "source_transfer_reversal transfer_reversal"
    ), overrides)


def dispute(**overrides) -> dict:
    return _build({
        "id": new_id("dp"), "object": "dispute", "amount": 500, "balance_transactions": [], "created": now(),
        "currency": "usd", "enhanced_eligibility_types": [], "evidence": {}, "is_charge_refundable": False,
        "evidence_details": {"due_by": now() + 7 * 86400, "has_evidence": False, "past_due": False,
                             "submission_count": 0, "enhanced_eligibility": {}},
        "livemode": False, "metadata": {}, "payment_method_details": {"type": "card", "card": {"brand": "visa",
                                                                                             "case_type": "chargeback",
                                                                                             "network_reason_code": "10.4"}},
        "reason": "fraudulent", "status": "needs_response",
    }, "charge payment_intent", overrides)


def portal_session(**overrides) -> dict:
    return _build({
        "id": new_id("bps"), "object": "billing_portal.session", "configuration": "bpc_test", "created": now(),
        "customer": "cus_x", "livemode": False, "return_url": "http://testserver/billing/",
        "url": "https://billing.stripe.com/p/session/test",
    }, "customer_account flow locale on_behalf_of", overrides)


def tax_calculation(*, amount: int, tax: int = 0, **overrides) -> dict:
    return _build({
        "id": new_id("taxcalc"), "object": "tax.calculation", "amount_total": amount + tax, "currency": "usd",
        "customer": None, "customer_details": {"address": address(), "address_source": "billing", "ip_address": None,
                                               "tax_ids": [], "taxability_override": "none"},
        "expires_at": now() + 90 * 86400, "livemode": False, "shipping_cost": None, "tax_amount_exclusive": tax,
        "tax_amount_inclusive": 0, "tax_breakdown": [], "tax_date": now(),
    }, "ship_from_details", overrides)


# --- events -------------------------------------------------------------------------


def event(type_: str, obj: dict, **overrides) -> dict:
    return _build({
        "id": new_id("evt"), "object": "event", "api_version": djstripe_settings.STRIPE_API_VERSION,
        "created": now(), "data": {"object": obj}, "livemode": False, "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None}, "type": type_,
    }, "", overrides)
