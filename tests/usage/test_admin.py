import pytest
from django.urls import reverse

from orgs.models import AuditEvent
from tests.factories import UserFactory
from usage import services
from usage.models import CreditAccount, GrantSource, LedgerEntry

pytestmark = pytest.mark.django_db

C = 1_000_000


@pytest.fixture
def staff_client(client):
    staff = UserFactory(email="staff@tollgate.test", is_staff=True, is_superuser=True)
    client.force_login(staff)
    return client


def test_ledger_entries_are_read_only_in_admin(staff_client, org):
    entry = services.credits_grant(org=org, amount_micros=C, source=GrantSource.PURCHASE)
    assert staff_client.get(reverse("admin:usage_ledgerentry_changelist")).status_code == 200
    page = staff_client.get(reverse("admin:usage_ledgerentry_change", args=[entry.pk]))
    assert page.status_code == 200 and b"Save" not in page.content
    assert staff_client.get(reverse("admin:usage_ledgerentry_add")).status_code == 403
    assert staff_client.post(reverse("admin:usage_ledgerentry_delete", args=[entry.pk]), {"post": "yes"}).status_code == 403


def test_an_adjustment_needs_a_reason_and_writes_a_compensating_entry(staff_client, org):
    services.credits_grant(org=org, amount_micros=10 * C, source=GrantSource.PURCHASE)
    account = CreditAccount.objects.get(org=org)
    url = reverse("admin:usage_creditaccount_adjust", args=[account.pk])
    assert b"Adjust credits" in staff_client.get(reverse("admin:usage_creditaccount_change", args=[account.pk])).content

    refused = staff_client.post(url, {"credits": "-3", "reason": "  "})
    assert refused.status_code == 200 and LedgerEntry.objects.count() == 1
    too_much = staff_client.post(url, {"credits": "-11", "reason": "oops"})
    assert b"available to take back" in too_much.content

    done = staff_client.post(url, {"credits": "-3", "reason": "double-charged run 42"})
    assert done.status_code == 302
    entry = LedgerEntry.objects.latest("id")
    assert (entry.kind, entry.amount_micros, entry.reason) == ("adjustment", -3 * C, "double-charged run 42")
    assert entry.staff_user.email == "staff@tollgate.test"
    assert CreditAccount.objects.get(org=org).balance_micros == 7 * C
    assert AuditEvent.objects.filter(org=org, action="credits.adjusted", actor_label="staff@tollgate.test").exists()


def test_meters_and_rates_are_editable(staff_client, rate_card):
    from usage.models import Meter

    meter = Meter.objects.get(code="action.small")
    assert staff_client.get(reverse("admin:usage_meter_change", args=[meter.pk])).status_code == 200
    assert staff_client.get(reverse("admin:usage_rate_changelist") + "?q=gpt").status_code == 200


def test_holds_show_their_tree_and_what_they_used_in_admin(staff_client, org):
    services.credits_grant(org=org, amount_micros=10 * C, source=GrantSource.PURCHASE)
    parent = services.hold_create(org=org, amount_micros=5 * C)
    child = services.hold_create(org=org, amount_micros=2 * C, parent_hold_id=parent.pk)
    page = staff_client.get(reverse("admin:usage_hold_changelist"))
    # What each hold used and recorded, in credits (the admin never shows raw micros), and its place in the tree.
    assert page.status_code == 200
    assert b"column-used_micros_shown" in page.content and b"column-recorded_micros_shown" in page.content
    assert b"column-parent" in page.content and b"column-depth" in page.content
    assert staff_client.get(reverse("admin:usage_hold_change", args=[child.pk])).status_code == 200
