import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from billing import selectors
from tests.billing.helpers import C, grant
from usage import services

pytestmark = pytest.mark.django_db


def chip(content: str) -> str:
    return content.split('data-testid="header-balance"')[1].split("</a>")[0]


@pytest.mark.parametrize("url", [reverse("billing:overview"), reverse("billing:members"), reverse("keys:list"), reverse("billing:usage")])
def test_every_signed_in_page_shows_the_available_balance(client, org, owner, url):
    grant(org, 1234.5)
    services.hold_create(org=org, amount_micros=200 * C)
    client.force_login(owner)
    shown = chip(client.get(url).content.decode())
    assert "1,034.5</span> credits" in shown
    assert 'data-status="ok"' in client.get(url).content.decode()


def test_it_is_coloured_by_status(client, org, owner, settings):
    settings.LOW_BALANCE_CREDITS = "100"
    client.force_login(owner)
    assert 'data-status="depleted"' in client.get(reverse("billing:members")).content.decode()
    grant(org, 99)
    assert 'data-status="low"' in client.get(reverse("billing:members")).content.decode()
    grant(org, 1)
    assert 'data-status="ok"' in client.get(reverse("billing:members")).content.decode()


def test_signed_out_pages_have_no_balance(client):
    assert b"header-balance" not in client.get(reverse("accounts:login")).content


def test_it_costs_one_row_read(org, owner):
    grant(org, 10)
    with CaptureQueriesContext(connection) as queries:
        balance = selectors.header_balance(org.pk)
    assert balance.available_micros == 10 * C
    assert len(queries) == 1
    assert "usage_creditaccount" in queries[0]["sql"] and '"org_id" =' in queries[0]["sql"]


def test_it_shows_the_current_org_not_another(client, org, owner, other_org):
    grant(other_org, 777)
    client.force_login(owner)
    assert "777" not in chip(client.get(reverse("billing:members")).content.decode())
