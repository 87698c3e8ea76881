"""The runaway breaker's record: one row per episode of unusual spend (see usage.services.runaway)."""

from __future__ import annotations

from django.db import models

from accounts.models import OrgAPIKey
from usage.units import format_credits


class RunawayOccurrence(models.Model):
    """An organization's (api_key_prefix "") or one API key's last hour of spend ran
    above RUNAWAY_MULTIPLE times its hourly baseline.

    One per episode: unique per (org, key, the clock hour it tripped in), and the
    check skips a scope that tripped within the last hour, so two beat processes or
    a task run twice record (and announce, and notify) once."""

    org = models.ForeignKey("orgs.Organization", on_delete=models.CASCADE, related_name="+")
    api_key_prefix = models.CharField(max_length=16, blank=True, help_text="Empty: the whole organization.")
    hour = models.DateTimeField(help_text="The clock hour (UTC) it tripped in.")
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    spend_micros = models.BigIntegerField(help_text="Spent in the window.")
    baseline_micros = models.BigIntegerField(help_text="Usual spend per hour (micro-credits, rounded down).")
    baseline_hours = models.PositiveIntegerField(help_text="Hours the baseline is taken over.")
    multiple = models.PositiveIntegerField()
    paused = models.BooleanField(default=False, help_text="The key was paused by this occurrence.")
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["org", "api_key_prefix", "hour"], name="runaway_once_per_hour"),
        ]
        indexes = [models.Index(fields=["org", "api_key_prefix", "-created_at"], name="runaway_scope_recent")]

    def __str__(self) -> str:
        scope = f"key {self.api_key_prefix}" if self.api_key_prefix else "organization"
        return f"{scope}: {format_credits(self.spend_micros)} credits in an hour"


class PausedApiKey(OrgAPIKey):
    """API keys as the runaway breaker sees them (a proxy: staff resume paused keys in admin)."""

    class Meta:
        proxy = True
        verbose_name = "paused API key"
        verbose_name_plural = "paused API keys"
