"""The test builders produce the fields Stripe's own examples have.

Stripe publishes an example of every API object (openapi/fixtures3.json in
stripe/openapi); the project keeps it beside the repository, not in it. When
it is there, every builder must produce exactly its example's top-level
fields, and the nested shapes Tollgate reads must match too.
"""

import json
import os
from pathlib import Path

import pytest
from django.conf import settings

from tests.billing import stripe_builders as b

FIXTURES = Path(os.environ.get("STRIPE_FIXTURES3", Path(settings.BASE_DIR).parent / "shared/stripe/fixtures3.json"))

pytestmark = pytest.mark.skipif(not FIXTURES.exists(), reason=f"Stripe's fixtures3.json is not at {FIXTURES}")


@pytest.fixture(scope="module")
def examples() -> dict:
    return json.loads(FIXTURES.read_text())["resources"]


def _price():
    return b.price(recurring={"interval": "month", "interval_count": 1, "meter": None, "usage_type": "licensed",
                              "trial_period_days": None}, type="recurring")


BUILDERS = {
    "account": b.account,
    "webhook_endpoint": b.webhook_endpoint,
    "product": b.product,
    "price": b.price,
    "billing.meter": b.meter,
    "billing.meter_event": b.meter_event,
    "customer": b.customer,
    "payment_method": b.payment_method,
    "checkout.session": b.checkout_session,
    "subscription": lambda: b.subscription(prices=[_price()]),
    "subscription_item": lambda: b.subscription_item(price_data=_price(), subscription_id="sub_x",
                                                     period_start=1, period_end=2),
    "invoice": lambda: b.invoice(lines=[b.invoice_line(price_data=_price(), period_start=1, period_end=2)],
                                 subscription_id="sub_x"),
    "line_item": lambda: b.invoice_line(price_data=_price(), period_start=1, period_end=2),
    "payment_intent": b.payment_intent,
    "charge": b.charge,
    "refund": b.refund,
    "dispute": b.dispute,
    "billing_portal.session": b.portal_session,
    "tax.calculation": lambda: b.tax_calculation(amount=500),
    "event": lambda: b.event("checkout.session.completed", b.checkout_session()),
    "coupon": b.coupon,
    "promotion_code": lambda: b.promotion_code(coupon_id="co_x"),
    "discount": lambda: b.discount(coupon_id="co_x", promotion_code_id="promo_x"),
}


@pytest.mark.parametrize("resource", sorted(BUILDERS))
def test_builder_fields_match_stripes_example(examples, resource):
    built = BUILDERS[resource]()

    assert set(built) == set(examples[resource]), (
        f"missing: {sorted(set(examples[resource]) - set(built))}, extra: {sorted(set(built) - set(examples[resource]))}"
    )
    assert built["object"] == examples[resource]["object"]


def test_the_nested_shapes_tollgate_reads_match(examples):
    invoice = BUILDERS["invoice"]()
    example = examples["invoice"]
    assert set(invoice["parent"]) >= {"type", "subscription_details"} and set(example["parent"]) >= {"subscription_details"}
    assert set(invoice["parent"]["subscription_details"]) == set(example["parent"]["subscription_details"])
    line, example_line = invoice["lines"]["data"][0], example["lines"]["data"][0]
    assert set(line["period"]) == set(example_line["period"])
    assert set(line["pricing"]) >= set(example_line["pricing"])
    assert set(line["parent"]) == set(example_line["parent"])

    sub = BUILDERS["subscription"]()
    item, example_item = sub["items"]["data"][0], examples["subscription"]["items"]["data"][0]
    assert set(item) == set(example_item)
    assert {"current_period_start", "current_period_end"} <= set(example_item)
    assert set(b.customer()["invoice_settings"]) == set(examples["customer"]["invoice_settings"])
