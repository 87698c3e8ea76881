"""API keys' budgets: a monthly credit limit and the meters a key may record.

The limit counts what the key spent this calendar month (UTC), kept per key
and month in KeySpend by the Python writer under the account lock, plus what
its open holds reserve: like members' caps, exact under concurrency. Over it,
402 key_limit_reached (usage.services.writer.require_affordable). Events of a
key carrying a limit skip the one-statement SQL debit (usage_ledger_debit
knows nothing of keys) and take the writer. A meter outside the key's list is
refused before pricing, 403 meter_not_allowed (usage.services.pricing).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from accounts import key_budgets, key_cache
from accounts.models import OrgAPIKey, User
from accounts.services import api_key_limit_check
from billing_project.errors import NotFound
from orgs.models import MANAGE_API_KEYS
from orgs.services import audit_record, role_require
from usage.models import KeySpend, UsageEvent
from usage.services.writer import lock_account, month_began, month_start
from usage.units import credits_str

if TYPE_CHECKING:
    from orgs.models import Organization
    from orgs.services import Actor


@transaction.atomic
def api_key_budget_set(
    *, org: Organization, prefix: str, monthly_limit_micros: int | None, meters: Sequence[str] | None,
    actor: Actor = None,
) -> OrgAPIKey:
    """Set a key's monthly limit (None: no limit) and the meters it may record
    (empty: every meter). Owners and admins only; another organization's key is 404.

    Under the account lock, so a change and a debit never interleave. A key
    given a limit it did not have starts the month with what its usage events
    this month already cost (the writer keeps KeySpend only while a limit is set)."""
    if isinstance(actor, User):
        role_require(org=org, user=actor, roles=MANAGE_API_KEYS, action="change API keys' limits")
    monthly_limit_micros = api_key_limit_check(monthly_limit_micros)
    meters = key_budgets.meters_check(meters)
    account = lock_account(org.pk)
    key = OrgAPIKey.objects.select_for_update().filter(org=org, prefix=prefix).first()
    if key is None:
        raise NotFound("No API key with that prefix in this organization.", code="not_found")
    previous, previous_meters = key.monthly_limit_micros, list(key.meters)
    if monthly_limit_micros is not None and previous is None:
        now = timezone.now()
        spent = (UsageEvent.objects.filter(account=account, api_key_prefix=key.prefix, created_at__gte=month_began(now))
                 .aggregate(total=Sum("credits_micros"))["total"] or 0)
        KeySpend.objects.update_or_create(
            account=account, api_key_prefix=key.prefix, month=month_start(now), defaults={"spent_micros": spent},
        )
    key.monthly_limit_micros, key.meters = monthly_limit_micros, meters
    key.save(update_fields=["monthly_limit_micros", "meters"])
    # This process applies it from its next call; the others within a second (accounts.key_cache).
    transaction.on_commit(lambda: key_cache.api_key_forget(key.prefix))
    audit_record(org=org, action="api_key.budget_set", actor=actor, data={
        "prefix": key.prefix,
        "monthly_limit": credits_str(monthly_limit_micros) if monthly_limit_micros is not None else None,
        "previous": credits_str(previous) if previous is not None else None,
        "meters": meters, "previous_meters": previous_meters,
    })
    return key
