"""Reads about organizations. Scoping to what a user may see happens here."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.http import Http404
from django.utils import timezone

from orgs.models import Invitation, Membership, Organization, Role, normalize_email

if TYPE_CHECKING:
    # Users live in accounts, above orgs: orgs needs only what any Django user has.
    from django.contrib.auth.base_user import AbstractBaseUser as User


def memberships_for_user(user: User):
    return Membership.objects.filter(user=user).select_related("org").order_by("-org__is_personal", "org__name")


def membership_for(user: User, org: Organization) -> Membership | None:
    return Membership.objects.filter(user=user, org=org).first()


def membership_get_or_404(user: User, slug: str) -> Membership:
    """The user's membership in the org with this slug; another org is a 404, never a 403,
    so a URL never confirms that an organization exists."""
    membership = Membership.objects.select_related("org").filter(user=user, org__slug=slug).first()
    if membership is None:
        raise Http404("No such organization.")
    return membership


def default_membership(user: User) -> Membership | None:
    """The org a user lands in: the team they joined last, else their personal one.

    Someone who belongs to a team came to work in it (the demo login opens
    Demo Co, an invitee opens the team that invited them); their personal
    organization is one choice away in the header's switcher."""
    return Membership.objects.filter(user=user).select_related("org").order_by("org__is_personal", "-created_at").first()


def members_of(org: Organization):
    return Membership.objects.filter(org=org).select_related("user").order_by("created_at")


def open_invitations(org: Organization):
    return Invitation.objects.filter(org=org, accepted_at__isnull=True, revoked_at__isnull=True).select_related(
        "invited_by"
    )


def members_count(org_id: int) -> int:
    return Membership.objects.filter(org_id=org_id).count()


def invitations_pending_count(org_id: int) -> int:
    """Invitations that can still be accepted: each holds a seat of the plan's member cap."""
    return Invitation.objects.filter(
        org_id=org_id, accepted_at__isnull=True, revoked_at__isnull=True, expires_at__gt=timezone.now()
    ).count()


def organization_by_id(org_id: int) -> Organization | None:
    return Organization.objects.filter(pk=org_id).first()


def transfer_recipient(identifier: str) -> Organization | None:
    """The organization credits sent to `identifier` go to: an e-mail names
    that person's personal organization, anything else a team organization's
    slug. None when there is no such person or organization."""
    identifier = (identifier or "").strip()
    if not identifier:
        return None
    if "@" in identifier:
        return (
            Organization.objects.filter(
                is_personal=True,
                memberships__user__email=normalize_email(identifier),
                memberships__role=Role.OWNER,
            )
            .order_by("created_at")
            .first()
        )
    return Organization.objects.filter(slug=identifier.lower(), is_personal=False).first()


def invitation_accepted(*, org: Organization, user: User) -> Invitation | None:
    """The invitation through which `user` joined `org` (the latest they accepted)."""
    return (Invitation.objects.select_related("invited_by").filter(org=org, accepted_by=user)
            .order_by("-accepted_at").first())
