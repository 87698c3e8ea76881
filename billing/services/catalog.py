"""The catalog: load the data file into the database, push it to Stripe.

Stripe is matched by stable keys so running either twice changes nothing:
products by a fixed id (`tollgate_plan_pro`), prices by lookup key. A Stripe
price's amount cannot change, so an edited amount makes a new price that
takes over the lookup key (`transfer_lookup_key`) and retires the old one;
subscribers on the old price keep it until they change plan.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import stripe
from django.conf import settings
from django.db import transaction
from djstripe import models as djstripe_models

from billing import gateway
from billing.models import OveragePrice, Pack, Plan, PlanPrice
from orgs.services import audit_record
from usage import services as usage_services
from usage.units import MICROS_PER_CREDIT

logger = logging.getLogger(__name__)

CATALOG_FILE = Path(__file__).resolve().parent.parent / "catalog.json"

# Every overage price, current or retired, belongs to this product (and the one meter).
OVERAGE_PRODUCT_ID = "tollgate_overage"


def _micros(credits: int | str) -> int:
    return int(Decimal(str(credits)) * MICROS_PER_CREDIT)


@transaction.atomic
def catalog_load(*, path: Path | None = None, overwrite: bool = False) -> dict[str, int]:
    """Create the catalog rows the data file lists; with `overwrite`, also reset
    existing rows to the file's values (Stripe ids are kept). Returns counts."""
    data = json.loads((path or CATALOG_FILE).read_text())
    created = updated = 0

    def upsert(model, lookup: dict[str, Any], values: dict[str, Any]):
        nonlocal created, updated
        row = model.objects.filter(**lookup).first()
        if row is None:
            created += 1
            return model.objects.create(**lookup, **values)
        if overwrite:
            changed = [name for name, value in values.items() if getattr(row, name) != value]
            if changed:
                for name in changed:
                    setattr(row, name, values[name])
                row.save(update_fields=changed)
                updated += 1
        return row

    for item in data["plans"]:
        plan = upsert(
            Plan, {"code": item["code"]},
            {
                "name": item["name"], "description": item.get("description", ""),
                "features": item.get("features", []), "overage_allowed": item.get("overage_allowed", False),
                "trial_days": item.get("trial_days", 0),
                "trial_allowance_micros": _micros(item.get("trial_allowance_credits", 0)),
                "sort_order": item.get("sort_order", 0),
                "members_limit": item.get("limits", {}).get("members"),
                "api_keys_limit": item.get("limits", {}).get("api_keys"),
            },
        )
        if overwrite:
            plan_features_write_down(plan, actor="command:sync_catalog")
        for price in item["prices"]:
            upsert(
                PlanPrice, {"plan": plan, "interval": price["interval"]},
                {
                    "amount_cents": price["amount_cents"], "currency": price.get("currency", "usd"),
                    "allowance_micros": _micros(price["allowance_credits"]), "lookup_key": price["lookup_key"],
                },
            )
    for item in data["packs"]:
        upsert(
            Pack, {"code": item["code"]},
            {
                "name": item["name"], "credits_micros": _micros(item["credits"]), "amount_cents": item["amount_cents"],
                "currency": item.get("currency", "usd"), "lookup_key": item["lookup_key"],
                "sort_order": item.get("sort_order", 0),
            },
        )
    for item in data.get("overage", []):
        upsert(
            OveragePrice, {"interval": item["interval"]},
            {"cents_per_credit": Decimal(item["cents_per_credit"]), "lookup_key": item["lookup_key"],
             "currency": item.get("currency", "usd")},
        )
    return {"created": created, "updated": updated}


def plan_features_write_down(plan: Plan, *, actor: Any = None) -> int:
    """Give every credit account on `plan` its features now (staff edited them, or
    the catalog was reloaded): gated meters follow at once. Returns the accounts changed."""
    return usage_services.accounts_set_plan_features(plan_code=plan.code, features=plan.features or [], actor=actor)


# --- pushing the catalog to Stripe ----------------------------------------


@dataclass
class SyncReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    def note(self, what: str, outcome: str) -> None:
        getattr(self, outcome).append(what)


def _product(product_id: str, *, name: str, description: str, report: SyncReport) -> dict:
    wanted = {"name": name, "description": description or None, "active": True}
    try:
        product = gateway.to_dict(stripe.Product.retrieve(product_id, **gateway.options()))
    except stripe.InvalidRequestError as exc:
        if exc.http_status != 404:
            raise
        product = gateway.to_dict(stripe.Product.create(
            id=product_id, name=name, description=description or None,
            metadata={"tollgate": "catalog"}, **gateway.options(),
        ))
        report.note(f"product {product_id}", "created")
    else:
        changes = {k: v for k, v in wanted.items() if product.get(k) != v and not (k == "description" and v is None)}
        if changes:
            product = gateway.to_dict(stripe.Product.modify(product_id, **changes, **gateway.options()))
            report.note(f"product {product_id}", "updated")
        else:
            report.note(f"product {product_id}", "unchanged")
    djstripe_models.Product.sync_from_stripe_data(product, api_key=gateway.api_key())
    return product


def _price(lookup_key: str, *, product_id: str, wanted: dict[str, Any], report: SyncReport) -> dict:
    """The active price under `lookup_key` with exactly `wanted`'s terms, made if needed."""
    found = stripe.Price.list(lookup_keys=[lookup_key], limit=1, **gateway.options())
    current = gateway.to_dict(found.data[0]) if found.data else None

    def same(price: dict) -> bool:
        recurring = price.get("recurring") or None
        want_recurring = wanted.get("recurring")
        return (
            price.get("active")
            and price.get("product") == product_id
            and price.get("currency") == wanted["currency"]
            and str(price.get("unit_amount_decimal") or price.get("unit_amount")) == str(
                wanted.get("unit_amount_decimal") or wanted.get("unit_amount"))
            and price.get("tax_behavior") == wanted["tax_behavior"]
            and (recurring or {}).get("interval") == (want_recurring or {}).get("interval")
            and (recurring or {}).get("usage_type", "licensed") == (want_recurring or {}).get("usage_type", "licensed")
            and (recurring or {}).get("meter") == (want_recurring or {}).get("meter")
        )

    if current is not None and same(current):
        report.note(f"price {lookup_key}", "unchanged")
        price = current
    else:
        price = gateway.to_dict(stripe.Price.create(
            product=product_id, lookup_key=lookup_key, transfer_lookup_key=True,
            metadata={"tollgate": "catalog"}, **wanted, **gateway.options(),
        ))
        if current is not None and current.get("active"):
            stripe.Price.modify(current["id"], active=False, **gateway.options())
        report.note(f"price {lookup_key}", "updated" if current else "created")
    djstripe_models.Price.sync_from_stripe_data(price, api_key=gateway.api_key())
    return price


def overage_meter_find() -> dict | None:
    """The active Stripe Billing Meter overage is reported to (by its event name), if any."""
    meters = stripe.billing.Meter.list(status="active", limit=100, **gateway.options())
    for meter in meters.auto_paging_iter():
        if meter["event_name"] == settings.BILLING_OVERAGE_METER_EVENT:
            return gateway.to_dict(meter)
    return None


def _meter(report: SyncReport) -> dict:
    event_name = settings.BILLING_OVERAGE_METER_EVENT
    meter = overage_meter_find()
    if meter is not None:
        report.note(f"meter {event_name}", "unchanged")
        return meter
    meter = stripe.billing.Meter.create(
        display_name="Tollgate overage (credits)", event_name=event_name,
        default_aggregation={"formula": "sum"},
        customer_mapping={"type": "by_id", "event_payload_key": "stripe_customer_id"},
        value_settings={"event_payload_key": "value"}, **gateway.options(),
    )
    report.note(f"meter {event_name}", "created")
    return gateway.to_dict(meter)


def catalog_sync(*, actor: Any = "command:sync_catalog") -> SyncReport:
    """Create or update the Stripe Products, Prices and the overage Meter that
    match the catalog, sync them into dj-stripe and remember their ids.

    Safe to run again at any time: everything is found by its fixed id or
    lookup key first. Zero-price plans (Free) need nothing in Stripe.
    """
    gateway.api_key()
    report = SyncReport()
    with gateway.translated_errors("sync the catalog"):
        for plan in Plan.objects.prefetch_related("prices"):
            paid = [p for p in plan.prices.all() if p.amount_cents > 0]
            if not paid:
                continue
            product = _product(f"tollgate_plan_{plan.code}", name=f"Tollgate {plan.name}",
                               description=plan.description, report=report)
            for price in paid:
                remote = _price(price.lookup_key, product_id=product["id"], report=report, wanted={
                    "currency": price.currency, "unit_amount": price.amount_cents, "tax_behavior": "exclusive",
                    "recurring": {"interval": price.interval, "usage_type": "licensed"},
                    "nickname": str(price),
                })
                _remember(price, stripe_price_id=remote["id"])
            _remember(plan, stripe_product_id=product["id"])
        for pack in Pack.objects.all():
            product = _product(f"tollgate_{pack.code}", name=f"Tollgate {pack.name}",
                               description=f"{pack.name} for your Tollgate balance", report=report)
            remote = _price(pack.lookup_key, product_id=product["id"], report=report, wanted={
                "currency": pack.currency, "unit_amount": pack.amount_cents, "tax_behavior": "exclusive",
                "nickname": pack.name,
            })
            _remember(pack, stripe_product_id=product["id"], stripe_price_id=remote["id"])
        overage = list(OveragePrice.objects.all())
        if overage:
            meter = _meter(report)
            product = _product(OVERAGE_PRODUCT_ID, name="Tollgate overage",
                               description="Credits used past zero, billed in arrears", report=report)
            for price in overage:
                remote = _price(price.lookup_key, product_id=product["id"], report=report, wanted={
                    "currency": price.currency, "unit_amount_decimal": format(price.cents_per_credit.normalize(), "f"),
                    "tax_behavior": "exclusive",
                    "recurring": {"interval": price.interval, "usage_type": "metered", "meter": meter["id"]},
                    "nickname": str(price),
                })
                _remember(price, stripe_price_id=remote["id"])
    audit_record(org=None, action="billing.catalog_synced", actor=actor,
                 data={"created": report.created, "updated": report.updated})
    return report


def _remember(row, **ids: str) -> None:
    changed = [name for name, value in ids.items() if getattr(row, name) != value]
    for name in changed:
        setattr(row, name, ids[name])
    if changed:
        row.save(update_fields=changed)
