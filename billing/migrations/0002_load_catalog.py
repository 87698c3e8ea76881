"""Load the default catalog (billing/catalog.json) so a fresh install can sell
from the start. Only rows the database lacks are created; staff edits survive."""

import json
from decimal import Decimal
from pathlib import Path

from django.db import migrations

CATALOG = Path(__file__).resolve().parent.parent / "catalog.json"
MICROS = 1_000_000


def load(apps, schema_editor):
    Plan = apps.get_model("billing", "Plan")
    PlanPrice = apps.get_model("billing", "PlanPrice")
    Pack = apps.get_model("billing", "Pack")
    OveragePrice = apps.get_model("billing", "OveragePrice")
    data = json.loads(CATALOG.read_text())
    for item in data["plans"]:
        plan, _ = Plan.objects.get_or_create(code=item["code"], defaults={
            "name": item["name"], "description": item.get("description", ""), "features": item.get("features", []),
            "overage_allowed": item.get("overage_allowed", False), "trial_days": item.get("trial_days", 0),
            "trial_allowance_micros": int(Decimal(str(item.get("trial_allowance_credits", 0))) * MICROS),
            "sort_order": item.get("sort_order", 0),
        })
        for price in item["prices"]:
            PlanPrice.objects.get_or_create(plan=plan, interval=price["interval"], defaults={
                "amount_cents": price["amount_cents"], "currency": price.get("currency", "usd"),
                "allowance_micros": int(Decimal(str(price["allowance_credits"])) * MICROS),
                "lookup_key": price["lookup_key"],
            })
    for item in data["packs"]:
        Pack.objects.get_or_create(code=item["code"], defaults={
            "name": item["name"], "credits_micros": int(Decimal(str(item["credits"])) * MICROS),
            "amount_cents": item["amount_cents"], "currency": item.get("currency", "usd"),
            "lookup_key": item["lookup_key"], "sort_order": item.get("sort_order", 0),
        })
    for item in data.get("overage", []):
        OveragePrice.objects.get_or_create(interval=item["interval"], defaults={
            "cents_per_credit": Decimal(item["cents_per_credit"]), "lookup_key": item["lookup_key"],
            "currency": item.get("currency", "usd"),
        })


class Migration(migrations.Migration):
    dependencies = [("billing", "0001_initial")]

    operations = [migrations.RunPython(load, migrations.RunPython.noop)]
