from __future__ import annotations

from django.conf import settings
from django.db import models

from orgs.models import Organization


class InboxItemQuerySet(models.QuerySet):
    def for_person(self, *, user, org: Organization) -> InboxItemQuerySet:
        return self.filter(user=user, org=org)

    def unread(self) -> InboxItemQuerySet:
        return self.filter(read_at__isnull=True)


class InboxItem(models.Model):
    """One notification as the bell and the notifications page show it to one person."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=64)
    title = models.CharField(max_length=200)
    body = models.CharField(max_length=300, blank=True)  # one line under the title
    link = models.CharField(max_length=300, blank=True)  # a path on this site: the page that fixes the problem
    read_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = InboxItemQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [
            # The bell's count on every page: unread items of one person in one org.
            models.Index(
                fields=["user", "org"], condition=models.Q(read_at__isnull=True), name="inbox_item_unread"
            ),
            models.Index(fields=["user", "org", "-created_at"], name="inbox_item_recent"),
        ]

    def __str__(self) -> str:
        return self.title
