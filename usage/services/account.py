"""The account's settings the ledger keeps for billing: its plan and its trigger lines."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from django.db import transaction

from usage.models import CreditAccount
from usage.services.writer import audit, lock_account, require_non_negative

if TYPE_CHECKING:
    from orgs.models import Organization
    from orgs.services import Actor


def account_open(*, org: Organization) -> CreditAccount:
    """The org's credit account, created on first need."""
    account, _ = CreditAccount.objects.get_or_create(org=org)
    return account


@transaction.atomic
def account_set_plan(
    *, org: Organization, plan_code: str, overage_allowed: bool, features: Iterable[str] | None = None,
    actor: Actor = None,
) -> CreditAccount:
    """Billing tells the ledger which plan the org is on (rate-card overrides,
    overage, and the features gated meters need; None leaves the features as
    they are). Under the account lock, so a write in flight decides on the old
    plan or the new one, never on a mix."""
    account = lock_account(org.pk)
    old_features = CreditAccount.objects.filter(pk=account.pk).values_list("features", flat=True).first() or []
    new_features = sorted(old_features) if features is None else sorted(set(features))
    if (account.plan_code, account.overage_allowed, sorted(old_features)) != (plan_code, overage_allowed, new_features):
        old = account.plan_code
        account.plan_code = plan_code
        account.overage_allowed = overage_allowed
        account.features = new_features
        account.save(update_fields=["plan_code", "overage_allowed", "features", "updated_at"])
        audit(org.pk, "credits.plan_set", actor, plan=plan_code, previous=old, overage_allowed=overage_allowed,
              **({"features": new_features} if new_features != sorted(old_features) else {}))
    return account


def accounts_set_plan_features(*, plan_code: str, features: Iterable[str], actor: Actor = None) -> int:
    """A plan's features changed in the catalog: every account on it gets them
    at once (each row's update takes its lock). Returns how many changed."""
    features = sorted(set(features))
    changed = CreditAccount.objects.filter(plan_code=plan_code).exclude(features=features).update(features=features)
    if changed:
        audit(None, "credits.plan_features_set", actor, plan=plan_code, features=features, accounts=changed)
    return changed


def account_set_auto_topup_threshold(*, org: Organization, threshold_micros: int | None) -> None:
    """Billing's auto top-up settings keep this; None turns the trigger off."""
    CreditAccount.objects.filter(pk=account_open(org=org).pk).update(auto_topup_threshold_micros=threshold_micros)


def account_set_low_balance_threshold(*, org: Organization, threshold_micros: int | None) -> None:
    """Billing's alert preferences keep this; None falls back to LOW_BALANCE_CREDITS."""
    if threshold_micros is not None:
        require_non_negative(threshold_micros, "The low-balance threshold must be zero or more credits.", "invalid_threshold")
    CreditAccount.objects.filter(pk=account_open(org=org).pk).update(low_balance_threshold_micros=threshold_micros)
