"""Another organization's credits are never one edited URL away on the billing pages."""

import csv
import io
import re

import pytest
from django.urls import reverse

from tests.billing.helpers import C, grant, spend
from usage import selectors
from usage.models import LedgerEntry

pytestmark = pytest.mark.django_db


@pytest.fixture
def their_history(other_org, outsider):
    grant(other_org, 500, reason="Globex secret grant")
    spend(other_org, 3, "g1", member=outsider, reason="Globex secret usage")
    return LedgerEntry.objects.filter(account__org=other_org).order_by("-id").first()


def test_no_page_shows_another_orgs_numbers_or_entries(client, org, owner, their_history):
    grant(org, 1)
    client.force_login(owner)
    for name in ("billing:overview", "billing:usage", "billing:send"):
        content = client.get(reverse(name)).content.decode()
        assert "Globex secret" not in content
        # Their balance as a number of its own, not three digits of a form's random key.
        assert not re.search(r"\b497\b", content)


def test_another_orgs_member_id_in_the_filter_is_refused(client, org, owner, outsider, their_history):
    client.force_login(owner)
    response = client.get(reverse("billing:usage"), {"member": outsider.pk})
    assert "Globex secret" not in response.content.decode()
    body = b"".join(client.get(reverse("billing:usage_export"), {"member": outsider.pk}).streaming_content).decode()
    assert "Globex" not in body


def test_a_cursor_made_from_another_orgs_entry_pages_only_through_ones_own(client, org, owner, their_history):
    grant(org, 10, reason="ours")
    client.force_login(owner)
    cursor = selectors.cursor_for(their_history)
    for param in ("older", "newer"):
        content = client.get(reverse("billing:usage"), {param: cursor}).content.decode()
        assert "Globex secret" not in content


def test_the_export_is_the_current_orgs_only(client, org, owner, their_history):
    grant(org, 10, reason="ours")
    client.force_login(owner)
    rows = list(csv.reader(io.StringIO(b"".join(client.get(reverse("billing:usage_export")).streaming_content).decode())))
    assert [r[2] for r in rows[1:]] == ["ours"]


def test_sending_always_spends_the_current_orgs_credits(client, org, owner, other_org, their_history):
    """The form has no 'from' field: a POST cannot name another org to spend from."""
    import uuid

    client.force_login(owner)
    response = client.post(
        reverse("billing:send"),
        {"recipient": "acme", "amount": "1", "idempotency_key": uuid.uuid4().hex, "from_org": other_org.pk},
    )
    assert response.status_code == 200  # acme is the sender itself: refused
    services_balance = other_org.credit_account.balance_micros
    assert services_balance == 497 * C


def test_an_outsider_switching_into_acme_by_url_gets_a_404(client, org, owner, outsider):
    client.force_login(outsider)
    assert client.post(reverse("orgs:switch", args=[org.slug])).status_code == 404
    assert client.get(reverse("billing:overview")).context["current_org"].slug == "globex"
