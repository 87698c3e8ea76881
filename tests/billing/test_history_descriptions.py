"""The history reads an entry recorded before usage reasons were worded well
as well as a new one: on the page and in the CSV."""

import pytest
from django.urls import reverse

from tests.billing.helpers import grant, spend

pytestmark = pytest.mark.django_db


@pytest.fixture
def old_entries(org, rate_card):
    grant(org, 1000)
    spend(org, 20, "xl", reason="146 action of action.xl")
    spend(org, 3, "tokens", reason="12400 token of ai.output_tokens")


def test_the_history_words_old_usage_entries_with_the_chart_s_meter_names(client, org, owner, old_entries):
    client.force_login(owner)
    page = client.get(reverse("billing:usage")).content.decode()
    assert "146 extra-large actions" in page
    assert "12,400 AI output tokens" in page
    assert "action of action.xl" not in page


def test_the_csv_words_them_the_same(client, org, owner, old_entries):
    client.force_login(owner)
    body = b"".join(client.get(reverse("billing:usage_export")).streaming_content).decode()
    assert "146 extra-large actions" in body and "12,400 AI output tokens" in body
