"""Sign-up and API keys: creating, revoking and checking them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts import key_budgets, key_cache, selectors, signups
from accounts.models import OrgAPIKey, Scope, User
from billing_project.errors import AuthenticationFailed, Conflict, InvalidRequest
from orgs import entitlements
from orgs import services as org_services
from orgs.models import MANAGE_API_KEYS, Organization, normalize_email

DEFAULT_SCOPES = (Scope.READ, Scope.USAGE_WRITE)

# Writing last_used_at on every call would turn each read into a write; a
# minute's precision is enough to tell a live key from a forgotten one.
LAST_USED_PRECISION = timedelta(seconds=60)


@transaction.atomic
def user_signup(*, email: str, password: str | None, full_name: str = "", reserved_slug: str | None = None) -> User:
    """Create a user with their personal organization, owned by them, then let
    the apps above react (billing starts the sign-up trial: `accounts.signups`).

    `reserved_slug` is one the caller is about to give a team organization
    (`create_org acme --owner acme@...`): the personal one must not take it."""
    email = normalize_email(email)
    if User.objects.filter(email=email).exists():
        raise Conflict("An account with this e-mail already exists. Sign in instead.", code="email_taken")
    try:
        with transaction.atomic():
            user = User.objects.create_user(email=email, password=password, full_name=full_name.strip())
    except IntegrityError:  # a concurrent sign-up with the same address won
        raise Conflict("An account with this e-mail already exists. Sign in instead.", code="email_taken") from None
    org = org_services.org_create_personal(user=user, avoid_slug=reserved_slug)
    signups.receivers_run(signups.SignedUp(user=user, org=org))
    return user


def _check_scopes(scopes) -> list[str]:
    scopes = list(dict.fromkeys(scopes or DEFAULT_SCOPES))
    unknown = [s for s in scopes if s not in Scope.values]
    if unknown:
        raise InvalidRequest(
            f"Unknown scope(s): {', '.join(unknown)}. Known: {', '.join(Scope.values)}.", code="invalid_scope"
        )
    return scopes


def api_key_limit_check(monthly_limit_micros: int | None) -> int | None:
    """A key's monthly limit: None (no limit) or a whole number of micro-credits, zero or more."""
    if monthly_limit_micros is None:
        return None
    if not isinstance(monthly_limit_micros, int) or isinstance(monthly_limit_micros, bool) or monthly_limit_micros < 0:
        raise InvalidRequest("A key's monthly limit must be zero or more credits.", code="invalid_amount")
    return monthly_limit_micros


@transaction.atomic
def api_key_create(
    *, org: Organization, name: str, scopes=None, actor: User | str | None = None,
    monthly_limit_micros: int | None = None, meters=None,
) -> tuple[OrgAPIKey, str]:
    """Create a key; returns the row and the secret, which is never stored or shown again.

    `monthly_limit_micros`: the most it may spend a calendar month (UTC), None
    for no limit, 0 for nothing chargeable; `meters`: the meter codes it may
    record, empty for every meter (usage enforces both)."""
    name = (name or "").strip()[:50]
    if not name:
        raise InvalidRequest("Give the key a name, such as the service that will use it.", code="name_required")
    if isinstance(actor, User):
        org_services.role_require(org=org, user=actor, roles=MANAGE_API_KEYS, action="create API keys")
    scopes = _check_scopes(scopes)
    monthly_limit_micros = api_key_limit_check(monthly_limit_micros)
    meters = key_budgets.meters_check(meters)
    # The org row lock keeps the count of keys true until this commits, so two
    # keys made at once cannot both take the plan's last one.
    Organization.objects.select_for_update().filter(pk=org.pk).first()
    entitlements.limit_require(
        org_id=org.pk, resource=entitlements.API_KEYS, count=selectors.api_keys_active_count(org.pk)
    )
    key_row, secret = OrgAPIKey.objects.create_key(
        org=org, name=name, scopes=scopes, created_by=actor if isinstance(actor, User) else None,
        monthly_limit_micros=monthly_limit_micros, meters=meters,
    )
    data = {"prefix": key_row.prefix, "name": name, "scopes": scopes}
    if monthly_limit_micros is not None:
        data["monthly_limit_micros"] = monthly_limit_micros
    if meters:
        data["meters"] = meters
    org_services.audit_record(org=org, action="api_key.created", actor=actor, data=data)
    return key_row, secret


@transaction.atomic
def api_key_revoke(
    *, org: Organization, key: OrgAPIKey, actor: User | str | None = None, staff: bool = False
) -> OrgAPIKey:
    """Revoke at once. `staff`: a Django admin action, where the admin site's own
    permissions apply instead of a role in the key's organization."""
    if isinstance(actor, User) and not staff:
        org_services.role_require(org=org, user=actor, roles=MANAGE_API_KEYS, action="revoke API keys")
    key = OrgAPIKey.objects.select_for_update().get(pk=key.pk, org=org)
    if key.revoked:
        return key
    key.revoked = True
    key.revoked_at = timezone.now()
    key.save(update_fields=["revoked", "revoked_at"])
    org_services.audit_record(org=org, action="api_key.revoked", actor=actor, data={"prefix": key.prefix, "name": key.name})
    # This process refuses it from its next call; the others within
    # API_KEY_CACHE_SECONDS (accounts.key_cache). Again after commit, in case a
    # call in between read the row as it was before.
    key_cache.api_key_forget(key.prefix)
    transaction.on_commit(lambda: key_cache.api_key_forget(key.prefix))
    return key


@dataclass(frozen=True)
class ApiKeyCheck:
    """A key that passed the check: who calls, for which organization, allowed what."""

    key: OrgAPIKey
    org: Organization
    scopes: tuple[str, ...]


def api_key_authenticate(*, raw_key: str) -> ApiKeyCheck:
    """Check a secret as a caller sent it, whatever the transport (the REST API's
    DRF class, later others). Unknown, revoked or expired keys raise
    AuthenticationFailed; a good one has its last use recorded (to the minute).

    The key's row is read through this process's cache (accounts.key_cache): a
    revocation, pause or budget change made elsewhere applies within
    API_KEY_CACHE_SECONDS (one second)."""
    prefix, dot, _ = raw_key.partition(".")
    if not dot:
        raise AuthenticationFailed("That API key is not valid.")
    key = key_cache.api_key_cached(prefix)
    if key is None or not key.is_valid(raw_key):
        raise AuthenticationFailed("That API key is not valid.")
    if key.revoked:
        raise AuthenticationFailed("That API key has been revoked.")
    if key.has_expired:
        raise AuthenticationFailed("That API key has expired.")
    now = timezone.now()
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_PRECISION:
        OrgAPIKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now
        key_cache.api_key_used(prefix, now)
    return ApiKeyCheck(key=key, org=key.org, scopes=tuple(key.scopes))
