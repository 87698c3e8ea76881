"""Resources: the rate card, and the plans and packs on sale, as JSON.

Both read what the REST API and the pages read (the rate card snapshot the
debit path prices from, billing.selectors' plans and packs, rendered by the
REST serializers)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from billing import api as billing_api
from billing import selectors as billing_selectors
from usage import selectors
from usage.services.rates import current_card


@dataclass(frozen=True)
class ResourceSpec:
    uri: str
    name: str
    title: str
    description: str


RATE_CARD = "tollgate://rate-card"
CATALOG = "tollgate://catalog"

RESOURCES = {r.uri: r for r in [
    ResourceSpec(RATE_CARD, "rate-card", "Rate card",
                 "Every active meter with its unit and its prices in credits per unit (by model and plan; an empty "
                 "model or plan means any), and the workflow types billing_estimate knows."),
    ResourceSpec(CATALOG, "catalog", "Plans and credit packs",
                 "The plans (monthly and yearly prices, allowance, features) and the credit packs on sale."),
]}


def rate_card() -> dict:
    card = current_card()
    meters = []
    for code, meter in sorted(card.meters.items()):
        if not meter.is_active:
            continue
        rates = [
            {"model": model, "plan": plan, "credits_per_unit": format(rate.credits_per_unit.normalize(), "f"),
             "provider": rate.provider}
            for (meter_code, model, plan), rate in sorted(card.rates.items()) if meter_code == code
        ]
        meters.append({"code": code, "name": meter.name, "unit": meter.unit, "category": meter.category,
                       "description": meter.description, "rates": rates})
    workflows = {
        code: {"name": spec.get("name", code), "usage": spec["usage"]}
        for code, spec in selectors.workflows()["workflows"].items()
    }
    return {"meters": meters, "workflows": workflows}


def catalog() -> dict:
    return {
        "plans": [billing_api.PlanSerializer(p).data for p in billing_selectors.plans_active()],
        "packs": [billing_api.PackSerializer(p).data for p in billing_selectors.packs_active()],
    }


def read(uri: str) -> str:
    data = rate_card() if uri == RATE_CARD else catalog()
    return json.dumps(data, default=str)
