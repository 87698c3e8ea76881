"""Webhook endpoints, the events sent to them and each delivery's attempts."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from orgs.models import Organization


class WebhookEndpoint(models.Model):
    """A URL of the platform's that receives an organization's events, signed with `secret`."""

    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="webhook_endpoints")
    url = models.URLField(max_length=2000)
    events = models.JSONField(default=list, help_text='Event types, or ["*"] for all.')
    description = models.CharField(max_length=200, blank=True)
    secret = models.CharField(max_length=80)
    # During a rotation both secrets sign, until `previous_secret_until`.
    previous_secret = models.CharField(max_length=80, blank=True)
    previous_secret_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Set at the first failed attempt since the last success; three days of it disables the endpoint.
    failing_since = models.DateTimeField(null=True, blank=True)
    disabled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.url

    def wants(self, event_type: str) -> bool:
        return "*" in self.events or event_type in self.events


class EventSequence(models.Model):
    """The last `Event.sequence` given out in one organization."""

    org = models.OneToOneField(Organization, on_delete=models.CASCADE, primary_key=True, related_name="+")
    last = models.BigIntegerField(default=0)


class Event(models.Model):
    """One thing that happened to an organization, as sent to its endpoints.

    (org, type, key) names the occurrence: the unique constraint makes sending
    it twice, from two processes at once, one event."""

    public_id = models.CharField(max_length=40, unique=True)
    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="outbound_events")
    type = models.CharField(max_length=64)
    key = models.CharField(max_length=200)
    sequence = models.BigIntegerField()
    payload = models.JSONField()
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-sequence"]
        constraints = [
            models.UniqueConstraint(fields=["org", "type", "key"], name="outbound_event_once_per_key"),
            models.UniqueConstraint(fields=["org", "sequence"], name="outbound_event_sequence_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.public_id} {self.type}"


class DeliveryState(models.TextChoices):
    PENDING = "pending", "Pending"
    SUCCEEDED = "succeeded", "Delivered"
    FAILED = "failed", "Failed"


class Delivery(models.Model):
    """One event on its way to one endpoint."""

    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="deliveries")
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    state = models.CharField(max_length=16, choices=DeliveryState.choices, default=DeliveryState.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    # Pending: when the next attempt is due (an attempt under way pushes it past its timeout, as a lease).
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()
    last_status_code = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "deliveries"
        constraints = [
            models.UniqueConstraint(fields=["event", "endpoint"], name="outbound_delivery_once_per_endpoint"),
        ]
        indexes = [
            # The sweep's query: due pending deliveries.
            models.Index(fields=["next_attempt_at"], condition=Q(state="pending"), name="outbound_delivery_due"),
        ]


class DeliveryAttempt(models.Model):
    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempt_log")
    at = models.DateTimeField()
    status_code = models.PositiveIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(default=0)
    response_excerpt = models.CharField(max_length=1024, blank=True)
    error = models.CharField(max_length=300, blank=True)
    succeeded = models.BooleanField(default=False)

    class Meta:
        ordering = ["-id"]
