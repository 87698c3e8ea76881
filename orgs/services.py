"""Organizations, memberships, invitations and the audit trail.

Each function is one state change in one transaction, writing its audit row in
that same transaction; e-mail leaves only after commit.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.text import slugify

from billing_project import request_context
from billing_project.errors import Conflict, InvalidRequest, NotFound, PermissionDenied
from orgs import creations, entitlements, selectors
from orgs.models import (
    MANAGE_MEMBERS,
    AuditedActor,
    AuditEvent,
    Invitation,
    Membership,
    MemberUsage,
    Organization,
    Role,
    normalize_email,
)
from orgs.notifications import notification_send

if TYPE_CHECKING:
    # Users live in accounts, above orgs: orgs needs only what any Django user has.
    from django.contrib.auth.base_user import AbstractBaseUser as User

# Who acted: a user or an API key (both from accounts), or a label such as "stripe".
Actor = AuditedActor | str | None

INVITATION_TTL = timedelta(days=7)


# --- audit ----------------------------------------------------------------


def audit_record(
    *, org: Organization | int | None, action: str, actor: Actor = None, data: dict[str, Any] | None = None
) -> AuditEvent:
    """Write one audit row. Call it inside the transaction of the change it records.
    `org` may be an id, to spare hot paths a query."""
    event = audit_event_build(org=org, action=action, actor=actor, data=data)
    event.save()
    return event


def audit_event_build(
    *, org: Organization | int | None, action: str, actor: Actor = None, data: dict[str, Any] | None = None
) -> AuditEvent:
    """The unsaved audit row `audit_record` writes."""
    return AuditEvent(**audit_fields(org=org, action=action, actor=actor, data=data))


def audit_fields(
    *, org: Organization | int | None, action: str, actor: Actor = None, data: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The column values of an audit row (who, from where, request id), for callers
    that insert rows in bulk or inside one SQL statement (the ledger's hot path)."""
    ctx = request_context.current()
    fields: dict[str, Any] = {
        "org_id": org if isinstance(org, int) or org is None else org.pk,
        "action": action,
        "source": ctx.source,
        "request_id": ctx.request_id,
        "ip": ctx.ip,
        "data": data or {},
        "actor_user_id": None,
        "actor_api_key": "",
        "actor_label": "",
    }
    describe = getattr(actor, "audit_identity", None)
    if describe is not None:
        identity = describe()
        fields.update(
            actor_user_id=identity.user_id, actor_api_key=identity.api_key_prefix, actor_label=identity.label
        )
    elif actor:
        fields.update(actor_label=str(actor))
    return fields


# --- organizations -------------------------------------------------------


def _unique_slug(base: str, *, avoid: str | None = None) -> str:
    stem = (slugify(base) or "org")[:48].strip("-") or "org"
    if stem != avoid and not Organization.objects.filter(slug=stem).exists():
        return stem
    return f"{stem}-{secrets.token_hex(3)}"


@transaction.atomic
def org_create(
    *, name: str, owner: User, is_personal: bool = False, slug: str | None = None, avoid_slug: str | None = None
) -> Organization:
    """Create an organization with `owner` as its first owner, then let the apps
    above react in this transaction (billing starts it on Free: `orgs.creations`).
    Without `slug`, one is made from the name, never `avoid_slug` (a slug about
    to be taken)."""
    name = (name or "").strip()
    if not name:
        raise InvalidRequest("An organization needs a name.", code="name_required")
    if slug is not None:
        slug = slugify(slug)
        if not slug:
            raise InvalidRequest("The slug may use letters, digits and hyphens.", code="invalid_slug")
    for _attempt in range(5):
        try:
            with transaction.atomic():
                org = Organization.objects.create(
                    name=name[:100], slug=slug or _unique_slug(name, avoid=avoid_slug), is_personal=is_personal
                )
            break
        except IntegrityError:
            if slug:
                raise Conflict(f"The slug “{slug}” is taken.", code="slug_taken") from None
    else:  # pragma: no cover - five random collisions in a row
        raise Conflict("Could not find a free slug; try another name.", code="slug_taken")
    # No credit account yet: the ledger opens one on the organization's first write.
    Membership.objects.create(org=org, user=owner, role=Role.OWNER)
    audit_record(org=org, action="org.created", actor=owner, data={"name": org.name, "personal": is_personal})
    creations.receivers_run(creations.OrgCreated(org=org, owner=owner))
    return org


def org_create_personal(*, user: User, avoid_slug: str | None = None) -> Organization:
    label = user.full_name or user.email.split("@")[0]
    return org_create(name=label, owner=user, is_personal=True, slug=None, avoid_slug=avoid_slug)


# --- memberships ---------------------------------------------------------


def _locked_org(org: Organization) -> Organization:
    # Every change to who holds which role takes the org row lock first, so two
    # concurrent demotions cannot each see "another owner remains" and leave none.
    return Organization.objects.select_for_update().get(pk=org.pk)


def role_require(*, org: Organization, user: User, roles: frozenset, action: str) -> Membership:
    """The user's membership if its role is one of `roles`, else PermissionDenied."""
    membership = Membership.objects.filter(org=org, user=user).first()
    if membership is None or membership.role not in roles:
        allowed = " and ".join(sorted(f"{r}s" for r in roles))
        raise PermissionDenied(f"Only {allowed} can {action}.", code="role_required")
    return membership


def _require_manager(org: Organization, actor: User) -> Membership:
    return role_require(org=org, user=actor, roles=MANAGE_MEMBERS, action="manage members")


def _owner_count(org: Organization) -> int:
    return Membership.objects.filter(org=org, role=Role.OWNER).count()


@transaction.atomic
def membership_change_role(*, org: Organization, actor: User, membership: Membership, role: str) -> Membership:
    if role not in Role.values:
        raise InvalidRequest(f"Unknown role “{role}”.", code="invalid_role")
    _locked_org(org)
    acting = _require_manager(org, actor)
    membership = Membership.objects.select_for_update().get(pk=membership.pk, org=org)
    touches_owner = Role.OWNER in (membership.role, role)
    if touches_owner and acting.role != Role.OWNER:
        raise PermissionDenied("Only an owner can grant or take away the owner role.", code="owner_required")
    if membership.role == Role.OWNER and role != Role.OWNER and _owner_count(org) == 1:
        raise Conflict("An organization must keep at least one owner.", code="last_owner")
    old = membership.role
    if old == role:
        return membership
    membership.role = role
    membership.save(update_fields=["role"])
    audit_record(
        org=org, action="member.role_changed", actor=actor,
        data={"member": membership.user.email, "from": old, "to": role},
    )
    return membership


@transaction.atomic
def membership_remove(*, org: Organization, actor: User, membership: Membership) -> None:
    """Remove a member; anyone may remove themselves (leave), but never the last owner."""
    _locked_org(org)
    membership = Membership.objects.select_for_update().get(pk=membership.pk, org=org)
    if membership.user_id != actor.pk:
        acting = _require_manager(org, actor)
        if membership.role == Role.OWNER and acting.role != Role.OWNER:
            raise PermissionDenied("Only an owner can remove an owner.", code="owner_required")
    if membership.role == Role.OWNER and _owner_count(org) == 1:
        if membership.user_id == actor.pk:
            raise Conflict(f"You are the only owner of {org.name}, so you cannot leave it. "
                           "Make another member an owner first.", code="last_owner")
        raise Conflict("An organization must keep at least one owner.", code="last_owner")
    if org.is_personal and membership.user_id == actor.pk:
        raise Conflict("You cannot leave your personal organization.", code="personal_org")
    email = membership.user.email
    membership.delete()
    audit_record(org=org, action="member.removed", actor=actor, data={"member": email})


# --- invitations ---------------------------------------------------------


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@transaction.atomic
def invitation_create(*, org: Organization, actor: User, email: str, role: str = Role.MEMBER) -> tuple[Invitation, str]:
    """Invite `email` to `org`; returns the invitation and the one-time token in its link."""
    email = normalize_email(email)
    if not email or "@" not in email:
        raise InvalidRequest("Enter a valid e-mail address.", code="invalid_email")
    if role not in Role.values:
        raise InvalidRequest(f"Unknown role “{role}”.", code="invalid_role")
    acting = _require_manager(org, actor)
    if org.is_personal:
        raise Conflict(
            "A personal organization is just for you; create a team organization to invite people.",
            code="personal_org",
        )
    if role == Role.OWNER and acting.role != Role.OWNER:
        raise PermissionDenied("Only an owner can invite another owner.", code="owner_required")
    if Membership.objects.filter(org=org, user__email__iexact=email).exists():
        raise Conflict(f"{email} is already a member.", code="already_member")
    _locked_org(org)  # counted seats stay true until this commits
    # Re-inviting replaces the open invitation (a fresh link, a fresh expiry).
    Invitation.objects.filter(
        org=org, email__iexact=email, accepted_at__isnull=True, revoked_at__isnull=True
    ).update(revoked_at=timezone.now())
    # The plan's member cap counts members and invitations still open: a seat
    # is taken when it is offered, so accepting never exceeds it.
    entitlements.limit_require(
        org_id=org.pk, resource=entitlements.MEMBERS,
        count=selectors.members_count(org.pk) + selectors.invitations_pending_count(org.pk),
    )
    token = secrets.token_urlsafe(32)
    invitation = Invitation.objects.create(
        org=org, email=email, role=role, token_hash=_hash_token(token), invited_by=actor,
        expires_at=timezone.now() + INVITATION_TTL,
    )
    audit_record(org=org, action="member.invited", actor=actor, data={"email": email, "role": role})
    link = request_context.site_url() + reverse("orgs:invitation", args=[token])
    notification_send(
        "invitation", org=org, emails=[email],
        context={"inviter": actor, "link": link, "role": invitation.get_role_display()},
    )
    return invitation, token


def invitation_get(*, token: str) -> Invitation:
    """The open invitation behind a link, or NotFound (used, revoked, expired, wrong)."""
    invitation = (
        Invitation.objects.select_related("org", "invited_by")
        .filter(token_hash=_hash_token(token or ""), accepted_at__isnull=True, revoked_at__isnull=True)
        .first()
    )
    if invitation is None or invitation.expires_at <= timezone.now():
        raise NotFound("This invitation link is no longer valid. Ask for a new one.", code="invitation_invalid")
    return invitation


@transaction.atomic
def invitation_accept(*, token: str, user: User) -> Membership:
    invitation = invitation_get(token=token)
    # The org row first, as invitation_create takes it before it touches
    # invitations: members are counted under it, and the two never wait on each other.
    _locked_org(invitation.org)
    invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
    if invitation.accepted_at or invitation.revoked_at:  # lost a race with another accept
        raise NotFound("This invitation link is no longer valid. Ask for a new one.", code="invitation_invalid")
    if invitation.email.lower() != user.email.lower():
        raise PermissionDenied(
            f"This invitation is for {invitation.email}; you are signed in as {user.email}.",
            code="invitation_other_email",
        )
    if not Membership.objects.filter(org=invitation.org, user=user).exists():
        # The seat was counted when the invitation was sent; a plan lowered
        # since then lets invitations in while members fit under its cap.
        entitlements.limit_require(
            org_id=invitation.org_id, resource=entitlements.MEMBERS, count=selectors.members_count(invitation.org_id),
        )
    membership, created = Membership.objects.get_or_create(
        org=invitation.org, user=user, defaults={"role": invitation.role}
    )
    invitation.accepted_at = timezone.now()
    invitation.accepted_by = user
    invitation.save(update_fields=["accepted_at", "accepted_by"])
    if created:
        audit_record(
            org=invitation.org, action="member.joined", actor=user,
            data={"role": membership.role, "invited_by": getattr(invitation.invited_by, "email", None)},
        )
    return membership


@transaction.atomic
def invitation_revoke(*, org: Organization, actor: User, invitation: Invitation) -> None:
    _require_manager(org, actor)
    updated = Invitation.objects.filter(pk=invitation.pk, org=org, accepted_at__isnull=True, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    if updated:
        audit_record(org=org, action="member.invitation_revoked", actor=actor, data={"email": invitation.email})


# --- settings -----------------------------------------------------------------


@transaction.atomic
def org_pause_on_runaway_set(*, org: Organization, enabled: bool, user: User | None = None, actor: Actor = None) -> Organization:
    """Turn "pause on runaway" on or off: the runaway breaker (usage.services.runaway)
    then pauses an API key spending far above its usual rate. `user`, when a person
    acts, must be an owner or admin; an API key (`actor`) needs only its scope."""
    if user is not None:
        role_require(org=org, user=user, roles=MANAGE_MEMBERS, action="change pause on runaway")
    org = _locked_org(org)
    if org.pause_on_runaway != enabled:
        org.pause_on_runaway = enabled
        org.save(update_fields=["pause_on_runaway"])
        audit_record(org=org, action="org.pause_on_runaway", actor=user or actor, data={"enabled": enabled})
    return org


@transaction.atomic
def org_member_usage_set(
    *, org: Organization, member_usage: str, user: User | None = None, actor: Actor = None,
) -> Organization:
    """Choose who pays for members' usage: the organization's balance (`pool`) or
    each member's personal one (`personal`, usage.services.routing). `user`, when
    a person acts, must be an owner; an API key (`actor`) needs only its scope.
    A personal organization always pays for itself."""
    if user is not None:
        role_require(org=org, user=user, roles=frozenset({Role.OWNER}), action="change who pays for members' usage")
    if member_usage not in MemberUsage.values:
        raise InvalidRequest("member_usage must be pool or personal.", code="invalid_member_usage")
    org = _locked_org(org)
    if org.is_personal and member_usage != MemberUsage.POOL:
        raise InvalidRequest("A personal organization pays for its own usage.", code="invalid_member_usage")
    if org.member_usage != member_usage:
        previous = org.member_usage
        org.member_usage = member_usage
        fields = ["member_usage"]
        if member_usage == MemberUsage.PERSONAL and org.members_paid_since is None:
            org.members_paid_since = timezone.now()
            fields.append("members_paid_since")
        org.save(update_fields=fields)
        audit_record(org=org, action="org.member_usage", actor=user or actor,
                     data={"member_usage": member_usage, "previous": previous})
    return org


# --- staff: pause and resume usage ---------------------------------------------

STAFF_REASON_MAX_LENGTH = 500


def staff_reason_require(reason: str) -> str:
    """The reason every staff action must give, stripped; 400 `reason_required` when empty."""
    reason = (reason or "").strip()
    if not reason:
        raise InvalidRequest("Say why.", code="reason_required", fields={"reason": ["This field is required."]})
    if len(reason) > STAFF_REASON_MAX_LENGTH:
        raise InvalidRequest(f"Keep the reason under {STAFF_REASON_MAX_LENGTH} characters.", code="invalid_request",
                             fields={"reason": [f"At most {STAFF_REASON_MAX_LENGTH} characters."]})
    return reason


@transaction.atomic
def org_usage_pause(*, org: Organization, reason: str, staff_user: User) -> Organization:
    """Staff: stop an organization's usage. From the commit on, its usage events
    and holds are refused with 402 `usage_paused` (usage.services.pause);
    captures and releases of holds already open stay possible. Pausing a paused
    organization changes nothing and writes no second audit row."""
    reason = staff_reason_require(reason)
    org = _locked_org(org)
    if org.usage_paused_at is None:
        org.usage_paused_at = timezone.now()
        org.usage_paused_reason = reason
        org.save(update_fields=["usage_paused_at", "usage_paused_reason"])
        audit_record(org=org, action="org.usage_paused", actor=staff_user, data={"reason": reason})
    return org


@transaction.atomic
def org_usage_resume(*, org: Organization, reason: str, staff_user: User) -> Organization:
    """Staff: let a paused organization's usage in again."""
    reason = staff_reason_require(reason)
    org = _locked_org(org)
    if org.usage_paused_at is not None:
        paused_at = org.usage_paused_at
        org.usage_paused_at = None
        org.usage_paused_reason = ""
        org.save(update_fields=["usage_paused_at", "usage_paused_reason"])
        audit_record(org=org, action="org.usage_resumed", actor=staff_user,
                     data={"reason": reason, "paused_at": paused_at.isoformat()})
    return org
