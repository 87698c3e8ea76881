"""Provider keys an organization brings (billing mode "own key").

Tollgate keeps no secret: the org tells it the provider, a label and the last
four characters, which is enough for people to recognise the key and for the
server to decide the billing mode of usage that names it. The API takes the
last four only; the settings page also takes a pasted key, which
`provider_key_last_four` cuts down to its last four before anything is kept.
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


NOT_A_KEY = "Type the last four characters of the key, or paste the whole key."


def provider_key_last_four(text: str) -> str:
    """The last four characters of a key typed or pasted whole (surrounding
    whitespace and a trailing newline from the clipboard are dropped).

    A key is one run of printable characters: text with spaces inside, or
    fewer than four characters, is not one and is refused."""
    text = (text or "").strip()
    if len(text) < 4 or not text.isprintable() or any(char.isspace() for char in text):
        raise InvalidRequest(NOT_A_KEY, code="invalid_last_four")
    return text[-4:]


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
