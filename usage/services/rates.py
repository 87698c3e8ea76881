"""The rate card: meters and their prices, loaded from usage/data/rate_card.json.

Prices are credits per unit, exact Decimals. A provider-priced rate in the
file states the provider's public list price in US dollars and a margin;
its credits per unit are `usd x margin / usd_per_credit`, computed exactly
(0.00000025 USD x 1.5 / 0.01 = 0.0000375 credits per gpt-5-mini input token).

The debit path reads the card from a per-process snapshot that is refreshed
every `CARD_TTL` seconds and at once in the process that edits it, so a
price edit applies everywhere within seconds without a query per event.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from django.db import transaction

from billing_project.errors import InvalidRequest
from orgs.services import audit_record
from usage.models import Meter, MeterCategory, Rate
from usage import rate_card
from usage.rate_card import DATA_FILE, read_data_file
from usage.units import AmountError, to_decimal

CARD_TTL = 5.0


def load_card_data(data: dict) -> tuple[int, int]:
    """Create or update every meter and rate of a rate card's data (see usage.rate_card)."""
    return rate_card.load_card_data(data, meter_model=Meter, rate_model=Rate)


@transaction.atomic
def rate_card_load(*, path: Path | str = DATA_FILE, actor=None) -> tuple[int, int]:
    """Load the rate card file into the database (idempotent)."""
    counts = load_card_data(read_data_file(path))
    audit_record(org=None, action="rates.loaded", actor=actor, data={"file": str(path), "meters": counts[0], "rates": counts[1]})
    transaction.on_commit(clear_cache)
    return counts


@transaction.atomic
def rate_set(
    *, meter_code: str, credits_per_unit: Decimal | str, model: str = "", plan_code: str = "", note: str = "", actor=None
) -> Rate:
    """Set one price (staff, tests). Applies in every process within CARD_TTL seconds."""
    meter = Meter.objects.filter(code=meter_code).first()
    if meter is None:
        raise InvalidRequest(f"Unknown meter “{meter_code}”.", code="unknown_meter")
    try:
        value = to_decimal(credits_per_unit)
    except AmountError as error:  # a float, not a number, or not finite
        raise InvalidRequest(f"A price must be zero or more credits: {error}", code="invalid_price") from None
    if value < 0:
        raise InvalidRequest("A price must be zero or more credits.", code="invalid_price")
    rate, _ = Rate.objects.update_or_create(
        meter=meter, model=model, plan_code=plan_code, defaults={"credits_per_unit": value, "note": note}
    )
    audit_record(org=None, action="rates.set", actor=actor,
                 data={"meter": meter_code, "model": model, "plan": plan_code, "credits_per_unit": str(value)})
    transaction.on_commit(clear_cache)
    return rate


# --- the snapshot the debit path prices from ----------------------------------


@dataclass(frozen=True)
class Price:
    meter: Meter
    model: str
    credits_per_unit: Decimal
    provider: str

    @property
    def is_provider_usage(self) -> bool:
        return self.meter.category == MeterCategory.PROVIDER


class RateCard:
    def __init__(self, meters: list[Meter], rates: list[Rate]) -> None:
        self.meters = {m.code: m for m in meters}
        self.rates: dict[tuple[str, str, str], Rate] = {}
        self.models: dict[str, list[str]] = {}
        by_id = {m.pk: m for m in meters}
        for rate in rates:
            code = by_id[rate.meter_id].code
            self.rates[(code, rate.model, rate.plan_code)] = rate
            if rate.model:
                self.models.setdefault(code, [])
                if rate.model not in self.models[code]:
                    self.models[code].append(rate.model)

    def meter(self, code: str) -> Meter:
        meter = self.meters.get(code)
        if meter is None or not meter.is_active:
            raise InvalidRequest(
                f"Unknown meter “{code}”. Known meters: {', '.join(sorted(c for c, m in self.meters.items() if m.is_active))}.",
                code="unknown_meter",
            )
        return meter

    def price(self, meter_code: str, model: str, plan_code: str) -> Price:
        """The most specific rate: (model, plan), (model, any plan), (any model, plan), (any, any)."""
        meter = self.meter(meter_code)
        for key in ((meter_code, model, plan_code), (meter_code, model, ""), (meter_code, "", plan_code), (meter_code, "", "")):
            rate = self.rates.get(key)
            if rate is not None:
                return Price(meter, model, rate.credits_per_unit, rate.provider)
        known = self.models.get(meter_code)
        if known:
            what = f"model “{model}”" if model else "a usage event without a model"
            raise InvalidRequest(
                f"No price for {what} on {meter_code}. Priced models: {', '.join(known)}.", code="unknown_model"
            )
        raise InvalidRequest(f"No price is set for {meter_code}.", code="no_rate")


    def snapshot(self, plan_code: str) -> dict:
        """The prices in force on `plan_code`, as JSON a hold keeps (a quote's locked
        rates): every rate for any plan or for this one, exactly as decimal strings."""
        return {
            "plan": plan_code,
            "rates": [
                [code, model, plan, str(rate.credits_per_unit), rate.provider]
                for (code, model, plan), rate in sorted(self.rates.items()) if plan in ("", plan_code)
            ],
        }

    def locked(self, snapshot: dict) -> RateCard:
        """A card pricing from `snapshot` (see `snapshot`), with this card's meters."""
        rates = [
            Rate(meter_id=self.meters[code].pk, model=model, plan_code=plan, credits_per_unit=Decimal(per_unit),
                 provider=provider)
            for code, model, plan, per_unit, provider in snapshot["rates"] if code in self.meters
        ]
        return RateCard(list(self.meters.values()), rates)


def price_locked(snapshot: dict, meter_code: str, model: str) -> Price:
    """The price of a meter as a quote locked it: the snapshot's rate on the quoted
    plan; one the snapshot does not know (a model priced since) at today's rates."""
    card = current_card()
    try:
        return card.locked(snapshot).price(meter_code, model, snapshot["plan"])
    except InvalidRequest:
        return card.price(meter_code, model, snapshot["plan"])


_lock = threading.Lock()
_card: RateCard | None = None
_loaded_at = 0.0


def current_card() -> RateCard:
    global _card, _loaded_at
    now = time.monotonic()
    if _card is None or now - _loaded_at > CARD_TTL:
        with _lock:
            if _card is None or now - _loaded_at > CARD_TTL:
                _card = RateCard(list(Meter.objects.all()), list(Rate.objects.all()))
                _loaded_at = now
    return _card


def clear_cache() -> None:
    global _card
    _card = None
