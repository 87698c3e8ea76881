"""Back office fixtures: the staff roles as migration 0001 makes them, and a
staff member in each (support, finance), beside a superuser."""

from __future__ import annotations

import functools
import importlib

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.db.migrations.loader import MigrationLoader
from django.test import override_settings

# Stripe at the HTTP edge and signed webhooks, as the billing tests have them.
from tests.billing.conftest import catalog, fake_stripe, rate_card, stripe_account, stripe_keys, webhooks  # noqa: F401
from tests.factories import UserFactory

roles_migration = importlib.import_module("backoffice.migrations.0001_staff_roles")


@functools.cache
def _state_apps():
    # The suite runs without migrations: the models as migration 0001 sees them.
    with override_settings(MIGRATION_MODULES={}):
        loader = MigrationLoader(connection)
        return loader.project_state(("backoffice", "0001_staff_roles")).apps


def roles_create() -> None:
    roles_migration.roles_create(_state_apps(), None)


def staff_in(group: str | None, email: str):
    user = UserFactory(email=email, is_staff=True)
    if group:
        user.groups.add(Group.objects.get(name=group))
    return user


@pytest.fixture
def roles(db) -> None:
    roles_create()


@pytest.fixture
def support(roles):
    return staff_in("Support", "support@tollgate.test")


@pytest.fixture
def finance(roles):
    return staff_in("Finance", "finance@tollgate.test")


@pytest.fixture
def finance_client(client, finance):
    client.force_login(finance)
    return client


@pytest.fixture
def support_client(client, support):
    client.force_login(support)
    return client


@pytest.fixture
def customer(webhooks, fake_stripe, org, owner, member):
    """Acme with a bit of everything: a pack bought and partly refunded, another
    disputed, a Starter subscription and its paid invoice, an open hold, an auto
    top-up attempt, a notification, and its audit trail."""
    from billing.models import AutoTopUpSettings, Pack, Purchase, TopUpAttempt
    from inbox.models import InboxItem
    from tests.billing import stripe_builders as b
    from tests.billing.helpers import C, invoice_for, paid_session, start_pack_checkout, subscription_for
    from usage import services as usage_services

    bought = []
    for code in ["pack_500", "pack_2000"]:
        session = paid_session(fake_stripe, start_pack_checkout(org, owner, code))
        webhooks.send("checkout.session.completed", session)
        charge = fake_stripe.get(fake_stripe.get(session["payment_intent"])["latest_charge"])
        bought.append(charge)
    refunded, disputed = bought
    webhooks.send("charge.refunded", dict(refunded, amount_refunded=250, refunded=False))
    webhooks.send("charge.dispute.created", b.dispute(amount=disputed["amount"], charge=disputed["id"],
                                                      payment_intent=disputed["payment_intent"], status="needs_response"))
    sub = subscription_for(fake_stripe, org, "starter")
    webhooks.send("customer.subscription.created", sub)
    invoice = invoice_for(fake_stripe, sub)
    webhooks.send("invoice.paid", invoice)
    usage_services.hold_create(org=org, amount_micros=7 * C, workflow_run_id="run-42")
    pack = Pack.objects.get(code="pack_500")
    AutoTopUpSettings.objects.create(org=org, enabled=True, threshold_micros=100 * C, pack=pack, monthly_cap_cents=5000)
    TopUpAttempt.objects.create(org=org, pack=pack, credits_micros=pack.credits_micros, amount_cents=pack.amount_cents,
                                idempotency_key="attempt-1", status="failed", failure_code="card_declined",
                                purchase=None)
    InboxItem.objects.create(user=owner, org=org, kind="billing_notice", title="Your card was declined")
    org.refresh_from_db()
    return {"org": org, "invoice": invoice, "purchases": list(Purchase.objects.filter(org=org).order_by("pk"))}
