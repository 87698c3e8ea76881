"""Usage events as they arrive: checked and priced before the account lock.

Everything about an event that does not depend on the balance (its fields,
meter, member and provider key, its price on the plan last seen and its row
as JSON) is decided here, so the recording (usage.services.events) holds the
lock only for the decisions that do.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.db.models import Q

from accounts.models import User
from billing_project.errors import InvalidRequest, NotFound, TollgateError
from orgs.entitlements import FeatureNotInPlan
from orgs.models import Membership
from usage.models import BillingMode, CreditAccount, Meter, ProviderKey
from usage.services import store
from usage.services.pause import key_require_meter
from usage.services.rates import Price, current_card, price_locked
from usage.units import charge_micros

if TYPE_CHECKING:
    from orgs.models import Organization

MAX_BATCH = 1000
MAX_QUANTITY = Decimal("1000000000000")  # 10^12 units in one event
# A charge must fit the ledger's 64-bit integers with room to spare.
MAX_CHARGE_MICROS = 10**15


@dataclass
class UsageInput:
    """One usage event as a caller states it (the API's serializer builds these)."""

    idempotency_key: str
    meter: str
    quantity: Decimal
    model: str = ""
    member: User | None = None
    member_email: str = ""
    provider_key_id: int | None = None
    workflow_run_id: str = ""
    occurred_at: datetime | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    # An open hold of the org the event is charged against (usage.services.events).
    hold_id: int | None = None

    def fingerprint(self) -> str:
        quantity = self.quantity.normalize() if isinstance(self.quantity, Decimal) else self.quantity
        parts = [
            self.meter, str(quantity), self.model, str(self.member.pk) if self.member else "",
            self.member_email.lower() if self.member_email else "", str(self.provider_key_id or ""),
            self.workflow_run_id, self.occurred_at.isoformat() if self.occurred_at else "",
            json.dumps(self.metadata, sort_keys=True, default=str) if self.metadata else "",
        ]
        if self.hold_id is not None:  # only then, so events without a hold keep their fingerprints
            parts.append(f"hold:{self.hold_id}")
        return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Priced:
    """One event priced: the rate card's price, the billing mode, the credits per
    unit applied and the charge in micro-credits."""

    price: Price
    mode: str
    per_unit: Decimal
    charge_micros: int


@dataclass
class Prepared:
    """One event on its way in: checked, then priced (or refused with `error`)."""

    input: UsageInput
    fingerprint: str
    member: User | None = None
    provider_key: ProviderKey | None = None
    error: TollgateError | None = None
    # priced before the lock, on the plan the org was last seen on
    priced: Priced | None = None
    plan: str = ""
    row: str = ""  # the event's JSON fields but id, account, entry and balance after
    api_key_prefix: str | None = None  # the API key that records it (usage.services.runaway)
    # `member_usage: personal` (usage.services.routing): the member's personal
    # organization pays, for this one.
    payer_org_id: int | None = None
    for_org_id: int | None = None
    spending_token_id: int | None = None  # the spending token that records it (usage.services.tokens)
    # The prices a quote locked, when the event is recorded against its hold
    # (usage.services.quotes): priced from them, whatever the card says now.
    locked_rates: dict | None = None


def prepare(org: Organization, inputs: list[UsageInput], *, actor=None) -> list[Prepared]:
    """Check what can be checked before the lock: fields, meter (and whether the
    acting API key may record it: 403 meter_not_allowed), member, provider key.
    Two queries at most for the whole batch (members by e-mail, provider keys by id)."""
    card = current_card()
    emails = {i.member_email.strip().lower() for i in inputs if i.member_email and i.member is None}
    member_ids = {i.member.pk for i in inputs if i.member is not None}
    members: dict[str, User] = {}
    known_ids: set[int] = set()
    if emails or member_ids:
        rows = Membership.objects.filter(org=org).filter(
            Q(user__email__in=emails) | Q(user_id__in=member_ids)
        ).select_related("user")
        for m in rows:
            members[m.user.email.lower()] = m.user
            known_ids.add(m.user_id)
    key_ids = {i.provider_key_id for i in inputs if i.provider_key_id is not None}
    keys = {k.pk: k for k in ProviderKey.objects.filter(org=org, pk__in=key_ids)} if key_ids else {}
    prepared = []
    for item in inputs:
        p = Prepared(item, item.fingerprint())
        try:
            if not item.idempotency_key or len(item.idempotency_key) > 200:
                raise InvalidRequest("Every usage event needs an idempotency_key of 1 to 200 characters.", code="invalid_request")
            card.meter(item.meter)
            key_require_meter(actor, item.meter)
            if not isinstance(item.quantity, Decimal) or not item.quantity.is_finite() or item.quantity <= 0:
                raise InvalidRequest("quantity must be a number greater than zero.", code="invalid_quantity")
            if item.quantity > MAX_QUANTITY or item.quantity.as_tuple().exponent < -9:
                raise InvalidRequest("quantity must be at most 10^12 with at most 9 decimal places.", code="invalid_quantity")
            if item.member is not None:
                if item.member.pk not in known_ids:
                    raise InvalidRequest("That member is not in this organization.", code="unknown_member")
                p.member = item.member
            elif item.member_email:
                p.member = members.get(item.member_email.strip().lower())
                if p.member is None:
                    raise InvalidRequest(f"{item.member_email} is not a member of this organization.", code="unknown_member")
            if item.provider_key_id is not None:
                p.provider_key = keys.get(item.provider_key_id)
                if p.provider_key is None:
                    # Another org's key is as unknown as a key that never existed.
                    raise NotFound("No such provider key.", code="provider_key_not_found")
        except TollgateError as error:
            p.error = error
        prepared.append(p)
    return prepared


def price_event(p: Prepared, plan_code: str, now: datetime) -> Priced:
    """Price one event on `plan_code`.

    An event against a quote's hold is priced at the rates the quote locked
    (`p.locked_rates`), on the plan it was quoted for.

    The billing mode comes from the key on record, never from the caller: usage
    names one of the org's provider keys that was active when it occurred, or it
    is billed in full. With the org's own key, provider usage (tokens, speech,
    images, video) costs nothing here (the provider bills the org); platform
    meters (compute, actions) are billed either way.
    """
    item = p.input
    if p.locked_rates is not None:
        price = price_locked(p.locked_rates, item.meter, item.model)
    else:
        price = current_card().price(item.meter, item.model, plan_code)
    mode = BillingMode.PLATFORM_KEY
    if p.provider_key is not None and p.provider_key.active_at(item.occurred_at or now):
        if price.provider and p.provider_key.provider != price.provider:
            raise InvalidRequest(
                f"Provider key {p.provider_key.pk} is a {p.provider_key.provider} key; {item.model} is a "
                f"{price.provider} model.", code="provider_key_mismatch",
            )
        mode = BillingMode.OWN_KEY
    per_unit = Decimal(0) if mode == BillingMode.OWN_KEY and price.is_provider_usage else price.credits_per_unit
    charge = charge_micros(item.quantity, per_unit)
    if charge > MAX_CHARGE_MICROS:
        raise InvalidRequest("This event costs more than one event may.", code="invalid_quantity")
    return Priced(price, mode, per_unit, charge)


def price_all(prepared: list[Prepared], plan: str, now: datetime) -> None:
    """Price each valid event on `plan` and pre-render its row, outside the lock."""
    for p in prepared:
        if p.error is not None:
            continue
        try:
            p.priced = price_event(p, plan, now)
        except TollgateError as error:
            p.error = error
            continue
        p.plan = plan
        priced = p.priced
        item = p.input
        p.row = store.row_dumps({
            "member_id": p.member.pk if p.member is not None else None, "meter_id": priced.price.meter.pk,
            "model": item.model, "quantity": str(item.quantity), "credits_per_unit": str(priced.per_unit),
            "credits_micros": priced.charge_micros, "billing_mode": priced.mode,
            "provider_key_id": p.provider_key.pk if p.provider_key is not None else None,
            "workflow_run_id": item.workflow_run_id, "occurred_at": (item.occurred_at or now).isoformat(),
            "created_at": now.isoformat(), "metadata": item.metadata, "idempotency_key": item.idempotency_key,
            "request_fingerprint": p.fingerprint, "api_key_prefix": p.api_key_prefix, "for_org_id": p.for_org_id,
            "spending_token_id": p.spending_token_id,
        })[1:-1]


# --- meters that need a plan feature ---------------------------------------------


def account_features(account: CreditAccount) -> frozenset[str]:
    """The features billing wrote down for the account's plan. Read apart from
    the lock's row (which loads only the columns every write needs), by the
    callers that hold that lock, so it is the plan they price with."""
    features = CreditAccount.objects.filter(pk=account.pk).values_list("features", flat=True).first()
    return frozenset(features or ())


def feature_require(meter: Meter, features: frozenset[str], plan_code: str) -> None:
    """Refuse (403 feature_not_in_plan) a meter whose required feature the plan lacks."""
    if meter.required_feature and meter.required_feature not in features:
        raise FeatureNotInPlan(feature=meter.required_feature, plan_code=plan_code, meter=meter.code)


def features_check_all(prepared: list[Prepared], account: CreditAccount) -> None:
    """Refuse each priced event whose meter needs a feature the account's plan
    lacks. Call it under the account lock, after pricing on the account's plan;
    it reads the features only when some meter needs one."""
    gated = [p for p in prepared if p.error is None and p.priced is not None and p.priced.price.meter.required_feature]
    if not gated:
        return
    features = account_features(account)
    for p in gated:
        try:
            feature_require(p.priced.price.meter, features, account.plan_code)
        except TollgateError as error:
            p.error = error


def meter_gated(code: str) -> bool:
    """Does this (known, active) meter need a plan feature?"""
    return bool(current_card().meter(code).required_feature)
