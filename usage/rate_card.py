"""The rate card file (usage/data/rate_card.json) and how it becomes rows.

Free of model imports, so data migrations can use it with their historical
models (usage.0003) as well as `manage.py load_rate_card`.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from usage.units import credit_price

DATA_FILE = Path(__file__).resolve().parent / "data" / "rate_card.json"


def read_data_file(path: Path | str = DATA_FILE) -> dict[str, Any]:
    # parse_float=Decimal: a price never passes through a binary float.
    return json.loads(Path(path).read_text(), parse_float=Decimal)


def rate_credits_per_unit(rate: dict[str, Any], data: dict[str, Any]) -> Decimal:
    if "credits_per_unit" in rate:
        return Decimal(str(rate["credits_per_unit"]))
    # Provider prices are in US dollars; a credit's list price is CREDIT_PRICE
    # (usage.units.credit_price), in the deployment's currency (USD by default).
    usd = Decimal(str(rate["provider_usd_per_unit"]))
    margin = Decimal(str(rate.get("margin", data["margin"])))
    return usd * margin / credit_price()


def load_card_data(data: dict[str, Any], *, meter_model, rate_model) -> tuple[int, int]:
    """Create or update every meter and rate of `data`. Takes the model classes so
    the data migration can pass its historical models. Rows not in the file stay."""
    meters = {}
    # Migrations older than the field pass a historical Meter without it.
    gates = any(f.name == "required_feature" for f in meter_model._meta.get_fields())
    for m in data["meters"]:
        defaults = {"name": m["name"], "unit": m["unit"], "category": m["category"], "description": m.get("description", "")}
        if gates:
            defaults["required_feature"] = m.get("required_feature", "")
        meter, _ = meter_model.objects.update_or_create(code=m["code"], defaults=defaults)
        meters[m["code"]] = meter
    for r in data["rates"]:
        rate_model.objects.update_or_create(
            meter=meters[r["meter"]], model=r.get("model", ""), plan_code=r.get("plan", ""),
            defaults={
                "credits_per_unit": rate_credits_per_unit(r, data),
                "provider": r.get("provider", ""),
                "provider_usd_per_unit": Decimal(str(r["provider_usd_per_unit"])) if "provider_usd_per_unit" in r else None,
                "note": r.get("note", "")[:300],
            },
        )
    return len(data["meters"]), len(data["rates"])


