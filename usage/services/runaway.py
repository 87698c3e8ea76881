"""The runaway breaker: spend far above its usual rate raises `usage.unusual`
and, where the organization asked for it, pauses the API key spending.

`runaway_check` (beat task `usage.runaway_check`, every 5 minutes) compares each
organization's and each API key's last hour of spend with its hourly baseline
(usage.selectors.runaway). It trips when the hour's spend is at least
RUNAWAY_MIN_CREDITS credits and more than RUNAWAY_MULTIPLE times the baseline
(compared exactly, in integers: spend × hours > multiple × total).

A trip records one RunawayOccurrence per episode: at most one per scope per
clock hour (a unique constraint, so concurrent runs insert one), and none while
the scope tripped within the last hour. Only the run that inserted it announces
`usage.unusual` (Happening key `runaway-<id>`) and notifies `usage_unusual` to
those who pay (owners, admins, billing) and to staff. When the organization has
`pause_on_runaway` and the trip is a key's, the key is paused as well
(`usage.paused`, notice `usage_paused`); an organization-level trip only notifies.
`api_key_resume` ends a pause (`usage.resumed`, keyed by the occurrence that paused it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import OrgAPIKey, User
from billing_project.errors import NotFound
from orgs.models import MANAGE_API_KEYS, Organization
from orgs.notifications import notification_send
from orgs.services import Actor, audit_record, role_require
from usage import happenings
from usage.errors import API_KEYS_PATH
from usage.models import RunawayOccurrence
from usage.selectors.runaway import WINDOW, HourSpend, hourly_baseline, spend_last_hour
from usage.services.pause import key_require_unpaused
from usage.units import MICROS_PER_CREDIT, credits_str

logger = logging.getLogger(__name__)

UNUSUAL = "usage.unusual"
PAUSED = "usage.paused"
RESUMED = "usage.resumed"
NOTICE_UNUSUAL = "usage_unusual"
NOTICE_PAUSED = "usage_paused"


@dataclass(frozen=True, slots=True)
class Trip:
    occurrence: RunawayOccurrence
    paused: bool


def occurrence_key(occurrence: RunawayOccurrence) -> str:
    """The Happening key of everything one occurrence causes (unusual, paused, and the resume ending it)."""
    return f"runaway-{occurrence.pk}"


def runaway_check(*, now: datetime | None = None) -> list[Trip]:
    """Look at every organization and API key with spend in the last hour; record,
    announce and notify each new trip. Safe to run twice, and concurrently."""
    now = now or timezone.now()
    multiple = settings.RUNAWAY_MULTIPLE
    minimum = settings.RUNAWAY_MIN_CREDITS * MICROS_PER_CREDIT
    trips: list[Trip] = []
    candidates = spend_last_hour(now=now, minimum_micros=minimum)
    if not candidates:
        return trips
    orgs = Organization.objects.in_bulk({c.org_id for c in candidates})
    keys = {k.prefix: k for k in OrgAPIKey.objects.filter(prefix__in={c.api_key_prefix for c in candidates if c.api_key_prefix})}
    for spend in candidates:
        org = orgs[spend.org_id]
        key = keys.get(spend.api_key_prefix) if spend.api_key_prefix else None
        if spend.api_key_prefix and (key is None or key.org_id != org.pk):
            continue
        since = key.created if key is not None else org.created_at
        baseline = hourly_baseline(account_id=spend.account_id, api_key_prefix=spend.api_key_prefix, since=since, now=now)
        if spend.spend_micros * baseline.hours <= multiple * baseline.total_micros:
            continue
        trip = _trip(org, key, spend, baseline.total_micros, baseline.hours, multiple, now)
        if trip is not None:
            trips.append(trip)
    return trips


def _trip(org: Organization, key: OrgAPIKey | None, spend: HourSpend, total: int, hours: int, multiple: int,
          now: datetime) -> Trip | None:
    prefix = spend.api_key_prefix or ""
    with transaction.atomic():
        if RunawayOccurrence.objects.filter(org=org, api_key_prefix=prefix, created_at__gt=now - WINDOW).exists():
            return None
        try:
            with transaction.atomic():
                occurrence = RunawayOccurrence.objects.create(
                    org=org, api_key_prefix=prefix, hour=now.replace(minute=0, second=0, microsecond=0),
                    window_start=now - WINDOW, window_end=now, spend_micros=spend.spend_micros,
                    baseline_micros=total // hours, baseline_hours=hours, multiple=multiple, created_at=now,
                )
        except IntegrityError:
            return None  # another run recorded this episode
        data = _data(occurrence)
        happenings.happening_announce(happenings.Happening(org.pk, UNUSUAL, occurrence_key(occurrence), data))
        _notify(NOTICE_UNUSUAL, org, data, occurrence_key(occurrence))
        paused = False
        if key is not None and org.pause_on_runaway:
            reason = (f"It spent {data['spend']} credits in an hour, over {multiple} times its usual "
                      f"{data['baseline']} credits an hour.")
            paused = OrgAPIKey.objects.filter(pk=key.pk, paused_at__isnull=True, revoked=False).update(
                paused_at=now, paused_reason=reason) == 1
            if paused:
                occurrence.paused = True
                occurrence.save(update_fields=["paused"])
                audit_record(org=org, action="api_key.paused", actor="task:usage.runaway_check",
                             data={"prefix": key.prefix, "reason": reason, "occurrence": occurrence.pk})
                paused_data = {**data, "paused_at": now.isoformat(), "reason": reason}
                happenings.happening_announce(happenings.Happening(org.pk, PAUSED, occurrence_key(occurrence), paused_data))
                _notify(NOTICE_PAUSED, org, paused_data, occurrence_key(occurrence))
    logger.warning("Runaway usage in org %s (key %s): %s credits in an hour, baseline %s/hour%s",
                   org.pk, prefix or "-", data["spend"], data["baseline"], ", key paused" if paused else "")
    return Trip(occurrence, paused)


def _data(occurrence: RunawayOccurrence) -> dict:
    return {
        "key_prefix": occurrence.api_key_prefix or None,
        "spend": credits_str(occurrence.spend_micros),
        "baseline": credits_str(occurrence.baseline_micros),
        "baseline_hours": occurrence.baseline_hours,
        "multiple": occurrence.multiple,
        "minimum": credits_str(settings.RUNAWAY_MIN_CREDITS * MICROS_PER_CREDIT),
        "window_start": occurrence.window_start.isoformat(),
        "window_end": occurrence.window_end.isoformat(),
    }


def _notify(kind: str, org: Organization, data: dict, key: str) -> None:
    """Those who pay (by their preferences), then staff not among them by address; each
    send keyed by the episode, so a second run of the check tells nobody twice."""
    context = {**data, "link": API_KEYS_PATH}
    sent = notification_send(kind, org=org, context=context, key=key)
    already = {r.email for r in sent.recipients} if sent is not None else set()
    staff = [e for e in User.objects.filter(is_staff=True, is_active=True).exclude(email="")
             .order_by("pk").values_list("email", flat=True) if e not in already]
    if staff:
        notification_send(kind, org=org, emails=staff, context=context, key=f"{key}:staff")


@transaction.atomic
def api_key_resume(*, org: Organization, prefix: str, actor: Actor = None, staff: bool = False) -> OrgAPIKey:
    """Resume a paused key of `org` (owners and admins, or another unpaused key of the org;
    `staff`: a Django admin action, where the admin site's permissions apply instead).
    Another organization's key is 404; a key not paused is returned as it is."""
    if isinstance(actor, User) and not staff:
        role_require(org=org, user=actor, roles=MANAGE_API_KEYS, action="resume API keys")
    key_require_unpaused(actor)
    key = OrgAPIKey.objects.select_for_update().filter(org=org, prefix=prefix).first()
    if key is None:
        raise NotFound("No API key with that prefix in this organization.", code="not_found")
    if key.paused_at is None:
        return key
    paused_at, now = key.paused_at, timezone.now()
    key.paused_at, key.paused_reason = None, ""
    key.save(update_fields=["paused_at", "paused_reason"])
    audit_record(org=org, action="api_key.resumed", actor=actor, data={"prefix": key.prefix})
    occurrence = (RunawayOccurrence.objects.filter(org=org, api_key_prefix=key.prefix, paused=True)
                  .order_by("-created_at", "-pk").first())
    happening_key = occurrence_key(occurrence) if occurrence is not None else f"pause-{key.prefix}-{paused_at.isoformat()}"
    happenings.happening_announce(happenings.Happening(org.pk, RESUMED, happening_key, {
        "key_prefix": key.prefix, "paused_at": paused_at.isoformat(), "resumed_at": now.isoformat(),
    }))
    return key


def paused_keys(org: Organization) -> list[OrgAPIKey]:
    """The organization's paused keys, for the API keys page's banner."""
    return list(OrgAPIKey.objects.filter(org=org, paused_at__isnull=False, revoked=False).order_by("paused_at"))

