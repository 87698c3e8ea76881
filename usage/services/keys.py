"""Provider keys an organization brings (billing mode "own key").

Tollgate never receives the secret: the org tells it the provider, a label
and the last four characters, which is enough for people to recognise the key
and for the server to decide the billing mode of usage that names it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from billing_project.errors import InvalidRequest, NotFound
from orgs.models import MANAGE_BILLING
from orgs.services import audit_record, role_require
from usage.models import Provider, ProviderKey

if TYPE_CHECKING:
    from orgs.models import Organization


def _require(org: Organization, actor) -> None:
    if isinstance(actor, User):
        role_require(org=org, user=actor, roles=MANAGE_BILLING, action="manage provider keys")


@transaction.atomic
def provider_key_create(*, org: Organization, provider: str, label: str, last_four: str, actor: User | str | None = None) -> ProviderKey:
    """Register a provider key by its label and last four characters (never the secret)."""
    _require(org, actor)
    if provider not in Provider.values:
        raise InvalidRequest(f"Unknown provider “{provider}”. Known: {', '.join(Provider.values)}.", code="invalid_provider")
    label = (label or "").strip()[:100]
    if not label:
        raise InvalidRequest("Give the key a label, such as where it is used.", code="label_required")
    last_four = (last_four or "").strip()
    if len(last_four) != 4 or not last_four.isprintable() or " " in last_four:
        raise InvalidRequest(
            "Send only the last four characters of the key, never the key itself.", code="invalid_last_four"
        )
    key = ProviderKey.objects.create(
        org=org, provider=provider, label=label, last_four=last_four,
        created_by=actor if getattr(actor, "pk", None) and hasattr(actor, "email") else None,
    )
    audit_record(org=org, action="provider_key.created", actor=actor,
                 data={"provider_key": key.pk, "provider": provider, "label": label, "last_four": last_four})
    return key


@transaction.atomic
def provider_key_revoke(*, org: Organization, key_id: int, actor: User | str | None = None) -> ProviderKey:
    """Stop treating usage that names this key as the org's own from now on.
    Usage that occurred before the revocation keeps its billing mode."""
    _require(org, actor)
    key = ProviderKey.objects.select_for_update().filter(pk=key_id, org=org).first()
    if key is None:
        raise NotFound("No such provider key.", code="provider_key_not_found")
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
        audit_record(org=org, action="provider_key.revoked", actor=actor, data={"provider_key": key.pk})
    return key
