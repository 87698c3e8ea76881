from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone
from rest_framework_api_key.models import AbstractAPIKey, BaseAPIKeyManager

from orgs.models import ActorIdentity, normalize_email


class UserManager(BaseUserManager):
    use_in_migrations = True

    def _create(self, email: str, password: str | None, **fields) -> "User":
        if not email:
            raise ValueError("An e-mail address is required.")
        user = self.model(email=normalize_email(email), **fields)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **fields) -> "User":
        fields.setdefault("is_staff", False)
        fields.setdefault("is_superuser", False)
        return self._create(email, password, **fields)

    def create_superuser(self, email: str, password: str | None = None, **fields) -> "User":
        fields.update(is_staff=True, is_superuser=True)
        return self._create(email, password, **fields)

    def get_by_natural_key(self, email: str) -> "User":
        return self.get(email=normalize_email(email))


class User(AbstractBaseUser, PermissionsMixin):
    """A person. E-mail is the login; there is no username."""

    email = models.EmailField("e-mail address", max_length=254, unique=True)
    full_name = models.CharField(max_length=150, blank=True)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False, help_text="Can log into the admin back-office.")
    date_joined = models.DateTimeField(default=timezone.now)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        constraints = [
            models.UniqueConstraint(Lower("email"), name="user_email_unique_ci"),
        ]

    def __str__(self) -> str:
        return self.email

    def clean(self) -> None:
        super().clean()
        self.email = normalize_email(self.email)

    def get_full_name(self) -> str:
        return self.full_name or self.email

    def get_short_name(self) -> str:
        return (self.full_name.split(" ")[0] if self.full_name else self.email.split("@")[0])

    def audit_identity(self) -> ActorIdentity:
        return ActorIdentity(label=self.email, user_id=self.pk)


class Scope(models.TextChoices):
    READ = "read", "Read balance, usage and ledger"
    USAGE_WRITE = "usage:write", "Record usage, holds and transfers"
    BILLING_WRITE = "billing:write", "Start checkouts and portal sessions"


class OrgAPIKeyManager(BaseAPIKeyManager):
    pass


class OrgAPIKey(AbstractAPIKey):
    """A key a platform service uses to call the API on behalf of one organization.

    The secret is shown once at creation; only its SHA-512 hash and its visible
    prefix are kept (djangorestframework-api-key does the hashing).
    """

    org = models.ForeignKey("orgs.Organization", on_delete=models.CASCADE, related_name="api_keys")
    scopes = ArrayField(models.CharField(max_length=32, choices=Scope.choices), default=list)
    created_by = models.ForeignKey(
        "accounts.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # Paused by the runaway breaker (usage.services.runaway) until an owner or admin resumes it.
    paused_at = models.DateTimeField(null=True, blank=True)
    paused_reason = models.CharField(max_length=300, blank=True)
    # Its budget: at most this many micro-credits a calendar month (UTC), None for
    # no limit; and the meters it may record (codes), empty for every meter.
    # Enforced by usage (usage.services.keybudget) under the account lock.
    monthly_limit_micros = models.BigIntegerField(null=True, blank=True)
    meters = ArrayField(models.CharField(max_length=64), default=list, blank=True)

    objects = OrgAPIKeyManager()

    class Meta(AbstractAPIKey.Meta):
        verbose_name = "API key"
        verbose_name_plural = "API keys"
        indexes = [models.Index(fields=["org", "-created"], name="apikey_org_created")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(monthly_limit_micros__gte=0), name="apikey_monthly_limit_not_negative"
            ),
        ]

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes

    def audit_identity(self) -> ActorIdentity:
        return ActorIdentity(label=f"API key {self.prefix} ({self.name})", api_key_prefix=self.prefix)
