"""What work will cost: estimates by meter quantities or workflow type, on a plan."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING


from billing_project.errors import InvalidRequest
from usage.models import BillingMode, Meter
from usage.services.rates import RateCard, current_card, read_data_file
from usage.units import MICROS_PER_CREDIT, charge_micros, credit_price

if TYPE_CHECKING:
    pass


# --- estimates ------------------------------------------------------------------

_CENT = Decimal("0.01")


@dataclass(frozen=True)
class EstimateLine:
    meter: str
    model: str
    low: Decimal
    high: Decimal
    credits_per_unit: Decimal
    low_micros: int
    high_micros: int


@dataclass(frozen=True)
class Estimate:
    workflow: str | None
    lines: list[EstimateLine]
    usd_per_credit: Decimal

    @property
    def low_micros(self) -> int:
        return sum(line.low_micros for line in self.lines)

    @property
    def high_micros(self) -> int:
        return sum(line.high_micros for line in self.lines)

    def usd(self, micros: int) -> Decimal:
        """Money at the list price of a credit (CREDIT_PRICE), rounded half up to the cent."""
        return (Decimal(micros) / MICROS_PER_CREDIT * self.usd_per_credit).quantize(_CENT, rounding=ROUND_HALF_UP)


_workflows_cache: dict | None = None


def workflows() -> dict:
    """Workflow types the estimate knows (tweet, thread, carousel, story, video), from the rate card file."""
    global _workflows_cache
    if _workflows_cache is None:
        data = read_data_file()
        _workflows_cache = {"workflows": data["workflows"]}
    return _workflows_cache


def estimate(
    *, plan_code: str, workflow: str | None = None, items: list[dict] | None = None,
    billing_mode: str = BillingMode.PLATFORM_KEY, card: RateCard | None = None,
) -> Estimate:
    """Credits and money a workflow type or a list of meter quantities would cost on
    a plan: each item as {meter, model?, quantity} or {meter, model?, low, high}.
    `card`: the prices to use (a quote's locked ones); by default today's."""
    catalog = workflows()
    if workflow is not None:
        known = catalog["workflows"]
        if workflow not in known:
            raise InvalidRequest(f"Unknown workflow “{workflow}”. Known: {', '.join(known)}.", code="unknown_workflow")
        items = known[workflow]["usage"]
    if not items:
        raise InvalidRequest("Name a workflow or list at least one meter quantity.", code="invalid_request")
    card = card or current_card()
    lines = []
    for item in items:
        low = Decimal(str(item.get("low", item.get("quantity"))))
        high = Decimal(str(item.get("high", item.get("quantity"))))
        if low < 0 or high < low:
            raise InvalidRequest("Quantities must be zero or more, and low no more than high.", code="invalid_quantity")
        price = card.price(item["meter"], item.get("model", ""), plan_code)
        per_unit = Decimal(0) if billing_mode == BillingMode.OWN_KEY and price.is_provider_usage else price.credits_per_unit
        lines.append(EstimateLine(
            item["meter"], item.get("model", ""), low, high, per_unit, charge_micros(low, per_unit), charge_micros(high, per_unit),
        ))
    return Estimate(workflow, lines, credit_price())


@dataclass(frozen=True)
class WorkflowEstimate:
    code: str
    name: str
    estimate: Estimate


def workflow_estimates(plan_code: str) -> list[WorkflowEstimate]:
    """What each known workflow type typically costs on a plan (the rate card's estimates)."""
    known = workflows()["workflows"]
    out = []
    for code, spec in known.items():
        try:
            out.append(WorkflowEstimate(code, spec.get("name", code.title()), estimate(plan_code=plan_code, workflow=code)))
        except InvalidRequest:
            continue  # a workflow that names a meter this deployment does not price
    return out


def meters_gated() -> list[Meter]:
    """Active meters that need a plan feature (from the card snapshot the debit path uses)."""
    return sorted((m for m in current_card().meters.values() if m.is_active and m.required_feature), key=lambda m: m.code)
