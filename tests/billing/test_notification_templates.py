"""Every registered kind renders its three templates, and billing's notices
go out once per occurrence from where billing decides them."""

from datetime import timedelta

import pytest
from django.core import mail
from django.template.loader import get_template
from django.utils import timezone

from billing.notifications import LINKS
from inbox.models import InboxItem
from orgs.models import Role
from orgs.notifications import notification_kinds, notification_send

pytestmark = pytest.mark.django_db

NOW = timezone.now()
# Everything any kind's templates read; a kind that needs more fails here.
CONTEXT = {
    "subject": "Something happened", "message": "A message.", "plan_name": "Starter", "grace_ends_at": NOW,
    "trial_ends_at": NOW, "days_left": 3, "renews_at": NOW, "interval_label": "yearly", "pack_name": "Pack 10k",
    "reason": "The card was declined.", "retry_at": NOW + timedelta(hours=1), "paused": False,
    "available": "12.5", "line": "100", "cooldown_hours": 24, "what": "Pack 10k", "credits": "10,000",
    "amount": "$10.00", "discount": "$2.00", "list_amount": "$12.00", "promotion_code": "FALL20", "purchased_at": NOW, "simulated": False, "link": "/billing/", "invited_by": "Ann",
    "accept_url": "http://testserver/x", "role": "Member", "allowance": None, "percent": 80,
    "key_prefix": "3fA9xQ2b", "spend": "612.5", "baseline": "4.2", "multiple": 10, "limit": "10", "spent": "8",
    "period": "2026-03",
}


@pytest.mark.parametrize("kind", [k.name for k in notification_kinds()])
@pytest.mark.parametrize("part", ["subject.txt", "body.txt", "body.html"])
def test_every_template_exists_for_every_registered_kind(kind, part):
    get_template(f"notifications/{kind}/{part}")


# Kinds without roles (the invitation, staff-only ones) go only to whom the caller names.
@pytest.mark.parametrize("kind", [k.name for k in notification_kinds() if k.name != "invitation" and k.roles])
def test_every_kind_renders_and_reaches_both_channels(kind, org, owner, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        sent = notification_send(kind, org=org, context=CONTEXT)

    assert sent is not None and sent.subject.startswith("[Tollgate]") and "\n" not in sent.subject
    assert "{{" not in sent.text and "{%" not in sent.html
    [message] = mail.outbox
    assert "owner of Acme" in message.body and "/notifications/preferences/" in message.body
    if "in_app" in sent.kind.channels:
        assert InboxItem.objects.get(user=owner).title.lower() in sent.subject.lower()


def test_every_link_is_a_page_of_this_site(client, owner):
    client.force_login(owner)
    for kind, link in LINKS.items():
        assert client.get(link).status_code in (200, 302), kind


def test_a_member_gets_no_payment_messages(org, owner, member, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        notification_send("payment_failed", org=org, context=CONTEXT)

    assert [m.to for m in mail.outbox] == [["owner@acme.test"]]
    assert not InboxItem.objects.filter(user=member).exists()
    assert Role.MEMBER not in next(k for k in notification_kinds() if k.name == "payment_failed").roles
