"""The in-app channel and what people do with their notifications."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme

from inbox.models import InboxItem
from orgs.models import Membership, Organization
from orgs.notifications import (
    Notification,
    notification_default,
    notification_kinds,
    notification_preference_set,
)

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser as User


def _first_paragraph(text: str) -> str:
    """The body's first line that says something: past a greeting ("Hello,")."""
    for paragraph in text.split("\n\n"):
        line = " ".join(paragraph.split())
        if line and not (line.endswith(",") and len(line) < 40):
            return line[:300]
    return ""


def _title(subject: str, org: Organization) -> str:
    """The subject without what the inbox already shows: "[Tollgate] Acme: your trial ends" -> "Your trial ends"."""
    title = subject.removeprefix("[Tollgate]").strip().removeprefix(f"{org.name}:").strip()
    return (title[:1].upper() + title[1:])[:200] or subject[:200]


def _safe_link(link: str) -> str:
    # Only a path on this site: a notification never sends anyone elsewhere.
    return link if link.startswith("/") and url_has_allowed_host_and_scheme(link, allowed_hosts=None) else ""


def inbox_deliver(notification: Notification) -> None:
    """The "in_app" channel: one item per person, after commit (the seam calls it then)."""
    if notification.org is None:
        return  # the inbox is per organization; a send to a user alone goes by e-mail
    body, link = _first_paragraph(notification.text), _safe_link(notification.link)
    InboxItem.objects.bulk_create(
        InboxItem(user=r.user, org=notification.org, kind=notification.kind.name, title=_title(notification.subject, notification.org),
                  body=body, link=link)
        for r in notification.recipients
        if r.user is not None
    )


def inbox_item_read(*, user: User, org: Organization, item_id: int) -> InboxItem | None:
    """Mark one of this person's items read; None if it is not theirs (a 404 for the view)."""
    item = InboxItem.objects.for_person(user=user, org=org).filter(pk=item_id).first()
    if item is not None and item.read_at is None:
        item.read_at = timezone.now()
        item.save(update_fields=["read_at"])
    return item


def inbox_read_all(*, user: User, org: Organization) -> int:
    return InboxItem.objects.for_person(user=user, org=org).unread().update(read_at=timezone.now())


def preferences_save(*, membership: Membership, checked: set[tuple[str, str]]) -> None:
    """Save the preferences page: `checked` holds the (kind, channel) boxes ticked. A box left
    at the default for the person's role stores nothing, so the default follows their role."""
    for kind in notification_kinds():
        if not kind.preferences:
            continue
        default = notification_default(kind, membership)
        for channel in kind.channels:
            on = (kind.name, channel) in checked
            notification_preference_set(user=membership.user, org=membership.org, kind=kind.name, channel=channel,
                                        enabled=None if on == default else on)
