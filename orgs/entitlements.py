"""What an organization's plan allows, asked from below billing.

Plans are billing's, above every app that meets what they allow: orgs, where
people join; accounts, where API keys are made; usage, where metered work is
recorded. Billing answers through this seam (`plans_register` in its
`AppConfig.ready()`); until it does (a lower app on its own) nothing is
limited and no plan is offered.

The two refusals live here too, so each app raises the same envelope:
`feature_not_in_plan` (a feature the plan lacks) and `plan_limit_reached` (a
count the plan caps), both 403 with the cheapest plan that allows it and an
absolute link to it on the Plans page, built like the 402's top-up link.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from billing_project import request_context
from billing_project.errors import PermissionDenied

PLANS_PATH = "/billing/plans/"

# The counts a plan may cap.
MEMBERS = "members"
API_KEYS = "api_keys"
RESOURCES = {MEMBERS: ("member", "members"), API_KEYS: ("API key", "API keys")}


@dataclass(frozen=True)
class PlanOffer:
    """A plan as a refusal names it."""

    code: str
    name: str


class PlanAnswers(Protocol):
    """What billing answers about plans (billing.selectors registers it)."""

    def limit(self, org_id: int, resource: str) -> int | None:
        """The org's plan's cap on `resource` (MEMBERS, API_KEYS); None: no cap."""

    def plan_of(self, org_id: int) -> PlanOffer | None:
        """The plan in force."""

    def cheapest_with_feature(self, feature: str) -> PlanOffer | None:
        """The cheapest active plan that includes `feature`."""

    def cheapest_allowing(self, resource: str, count: int) -> PlanOffer | None:
        """The cheapest active plan whose cap on `resource` allows `count` of it."""

    def feature_label(self, feature: str) -> str:
        """How people read a feature code (media_generation: "Image, speech and video generation")."""


_answers: PlanAnswers | None = None


def plans_register(answers: PlanAnswers | None) -> None:
    """Billing's answers from now on (None: none, as before billing is ready)."""
    global _answers
    _answers = answers


def limit_of(org_id: int, resource: str) -> int | None:
    return _answers.limit(org_id, resource) if _answers is not None else None


def upgrade_url(plan: PlanOffer | None) -> str:
    """The Plans page, at the card of `plan` when there is one."""
    anchor = f"#plan-{plan.code}" if plan is not None else ""
    return request_context.site_url() + PLANS_PATH + anchor


def _offer_details(current: PlanOffer | None, offer: PlanOffer | None) -> dict:
    return {
        "plan": current.code if current is not None else None,
        "upgrade_plan": offer.code if offer is not None else None,
        "upgrade_plan_name": offer.name if offer is not None else None,
        "upgrade_url": upgrade_url(offer),
    }


class FeatureNotInPlan(PermissionDenied):
    """The plan in force lacks a feature: 403 with the cheapest plan that has it."""

    code = "feature_not_in_plan"

    def __init__(self, *, feature: str, plan_code: str, meter: str = "") -> None:
        label = _answers.feature_label(feature) if _answers is not None else feature
        offer = _answers.cheapest_with_feature(feature) if _answers is not None else None
        # The plan the caller decided on (the ledger's locked row, billing's state), by code.
        current = PlanOffer(plan_code, plan_code) if plan_code else None
        message = f"{meter} needs {label}, which your plan does not include." if meter else (
            f"{label} is not included in your plan.")
        if offer is not None:
            message += f" Upgrade to {offer.name} to use it."
        self.offer = offer
        super().__init__(
            message, required_feature=feature, **({"meter": meter} if meter else {}),
            **_offer_details(current, offer),
        )


class PlanLimitReached(PermissionDenied):
    """A count the plan caps is reached: 403 with the cheapest plan that allows one more."""

    code = "plan_limit_reached"

    def __init__(self, *, org_id: int, resource: str, limit: int, count: int) -> None:
        current = _answers.plan_of(org_id) if _answers is not None else None
        offer = _answers.cheapest_allowing(resource, count + 1) if _answers is not None else None
        one, many = RESOURCES.get(resource, (resource, resource))
        plan_name = current.name if current is not None else "Your plan"
        message = f"{plan_name} allows {limit} {one if limit == 1 else many} per organization, and this one has {count}."
        if offer is not None:
            message += f" Upgrade to {offer.name} for more."
        self.offer = offer
        super().__init__(message, resource=resource, limit=limit, count=count, **_offer_details(current, offer))


def limit_require(*, org_id: int, resource: str, count: int) -> None:
    """Refuse one more of `resource` when the org already has `count` and its plan caps it there.
    The caller holds a lock that keeps `count` true until it commits (the org row)."""
    limit = limit_of(org_id, resource)
    if limit is not None and count >= limit:
        raise PlanLimitReached(org_id=org_id, resource=resource, limit=limit, count=count)
