from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import pgtrigger
from django.conf import settings
from django.db import models
from django.db.models.functions import Lower


def normalize_email(email: str) -> str:
    # Addresses compare case-insensitively everywhere in Tollgate: one person,
    # one account, however they capitalise it at sign-up or in an invitation.
    # It lives here, below accounts, because invitations compare addresses too.
    return (email or "").strip().lower()


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    BILLING = "billing", "Billing"
    MEMBER = "member", "Member"


# Who may do what. Owners, admins and billing managers buy and set limits;
# only owners and admins manage people and keys; members consume.
MANAGE_MEMBERS = frozenset({Role.OWNER, Role.ADMIN})
MANAGE_BILLING = frozenset({Role.OWNER, Role.ADMIN, Role.BILLING})
MANAGE_API_KEYS = MANAGE_MEMBERS

# What each role may do, in the words the invite form shows beside each choice.
ROLE_DESCRIPTIONS = {
    Role.OWNER: "Everything an admin can do, and makes or removes owners. An organization always keeps one.",
    Role.ADMIN: "Invites and removes people, manages API keys and members' caps, and buys credits.",
    Role.BILLING: "Buys credits, changes the plan and auto top-up, and sets the low-balance line.",
    Role.MEMBER: "Uses the organization's credits through the API and reads its billing pages.",
}


class MemberUsage(models.TextChoices):
    """Who pays for a member's usage of the organization."""

    POOL = "pool", "The organization's balance"
    # For public and community organizations: each member's usage is charged to
    # their own personal organization (usage.services.routing).
    PERSONAL = "personal", "Each member's personal balance"


class OrganizationQuerySet(models.QuerySet):
    """Scoping organizations to a user happens in orgs.selectors."""


class Organization(models.Model):
    """The billing entity: every balance, plan and key belongs to one.

    Each user gets a personal organization at sign-up, so individual and team
    billing are one code path.
    """

    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=60, unique=True)
    is_personal = models.BooleanField(
        default=False, help_text="Created at sign-up for one person; cannot take invitations."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    pause_on_runaway = models.BooleanField(
        default=False, help_text="Pause an API key whose hourly spend runs far above its usual rate."
    )
    member_usage = models.CharField(
        max_length=10, choices=MemberUsage.choices, default=MemberUsage.POOL,
        help_text="Who pays for members' usage: the organization (pool) or each member's personal balance.",
    )
    members_paid_since = models.DateTimeField(
        null=True, blank=True, editable=False,
        help_text="When members first paid for their own usage; from then on, a retry in pool mode of an event "
                  "a member paid for is answered as a replay.",
    )

    # Staff pause an organization's usage (orgs.services.org_usage_pause): its
    # usage events and holds are refused with 402 usage_paused until resumed.
    usage_paused_at = models.DateTimeField(null=True, blank=True, editable=False)
    usage_paused_reason = models.CharField(max_length=500, blank=True, editable=False)

    objects = OrganizationQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def members_pay(self) -> bool:
        return self.member_usage == MemberUsage.PERSONAL


class Membership(models.Model):
    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["org", "user"], name="membership_unique_org_user")]
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"{self.user} in {self.org} ({self.role})"

    @property
    def can_manage_members(self) -> bool:
        return self.role in MANAGE_MEMBERS

    @property
    def can_manage_billing(self) -> bool:
        return self.role in MANAGE_BILLING

    @property
    def can_manage_api_keys(self) -> bool:
        return self.role in MANAGE_API_KEYS


class Invitation(models.Model):
    """An e-mailed invitation to join an organization.

    Only a hash of the token is stored: the link in the e-mail is the secret.
    """

    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField()
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    token_hash = models.CharField(max_length=64, unique=True)
    invited_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # At most one open invitation per address and org; re-inviting replaces it.
            models.UniqueConstraint(
                "org",
                Lower("email"),
                condition=models.Q(accepted_at__isnull=True, revoked_at__isnull=True),
                name="invitation_one_open_per_email",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.email} to {self.org}"


@dataclass(frozen=True)
class ActorIdentity:
    """How an audit row names whoever acted."""

    label: str
    user_id: int | None = None
    api_key_prefix: str = ""


class AuditedActor(Protocol):
    """Someone an audit row can name: accounts' users and API keys. orgs sits
    below accounts, so it asks the actor who it is instead of testing its class."""

    def audit_identity(self) -> ActorIdentity: ...


class AuditEvent(models.Model):
    """Who did what to which organization, when and from where. Append-only."""

    org = models.ForeignKey(Organization, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    action = models.CharField(max_length=64)
    # No database constraint: an audit row outlives the user it names, and being
    # append-only it could not be updated to NULL when the user goes.
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    actor_api_key = models.CharField(max_length=16, blank=True, help_text="Prefix of the API key that acted.")
    actor_label = models.CharField(max_length=150, blank=True, help_text="Who acted, as text, kept if the user goes.")
    source = models.CharField(max_length=64, blank=True, help_text="web, api, task:<name>, command:<name>, stripe")
    request_id = models.CharField(max_length=64, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["org", "-created_at"], name="audit_org_created")]
        triggers = [
            pgtrigger.Protect(name="audit_append_only", operation=pgtrigger.Update | pgtrigger.Delete),
        ]

    def __str__(self) -> str:
        return f"{self.action} by {self.actor_label or 'system'}"

    @classmethod
    def insert_columns(cls) -> list[str]:
        """Every column but the id, in the table's order: what a bulk insert of
        audit rows writes (the ledger's one-statement flush)."""
        return [f.column for f in cls._meta.concrete_fields if not f.primary_key]


class NotificationPreference(models.Model):
    """One person's choice for one kind of notification over one channel, in one
    organization. No row: the default for their role (orgs.notifications)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=64)
    channel = models.CharField(max_length=32)
    enabled = models.BooleanField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "org", "kind", "channel"], name="notification_preference_unique"),
        ]


class NotificationOccurrence(models.Model):
    """One occurrence of something worth telling, already told. The unique
    constraint is what keeps a duplicated task, or two beat processes, from
    telling it twice: the second insert does nothing and the send stops."""

    org = models.ForeignKey(Organization, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    kind = models.CharField(max_length=64)
    key = models.CharField(max_length=200)
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            # nulls_distinct=False: a send to a user or to addresses (no org) dedupes too.
            models.UniqueConstraint(
                fields=["org", "kind", "key"], name="notification_occurrence_unique", nulls_distinct=False
            ),
        ]
        # The cooldown asks for the latest occurrence of a kind in an org.
        indexes = [models.Index(fields=["org", "kind", "-created_at"], name="notification_occurrence_recent")]
