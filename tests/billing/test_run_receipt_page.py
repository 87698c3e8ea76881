"""The receipt page of a workflow run under Usage, and its CSV."""

import csv
import io

import pytest
from django.urls import reverse

from rest_framework.test import APIClient

from orgs.models import MemberUsage, Organization
from tests.billing.helpers import C, grant
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory, api_key_for
from tests.usage.conftest import rate_card  # noqa: F401  the default rate card
from usage import services
from usage.models import GrantSource

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("rate_card")]


def record(org, key: str, run: str = "run-1", **fields) -> dict:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_for(org, name=f'k-{key}')[1]}")
    body = {"idempotency_key": key, "meter": "action.medium", "quantity": "1", "workflow_run_id": run, **fields}
    response = api.post("/api/v1/usage/events", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def page(run: str) -> str:
    return reverse("billing:run_receipt", args=[run])


def csv_rows(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


@pytest.fixture
def run(org, member):
    grant(org, 100)
    record(org, "a", quantity="2")
    record(org, "b", meter="ai.output_tokens", model="gpt-5-mini", quantity="12400", member=member.email)
    record(org, "c", run="run-2")
    return "run-1"


@pytest.mark.parametrize("who", ["owner", "member"])
def test_members_and_owners_read_the_receipt(client, run, owner, member, who, request):
    client.force_login(request.getfixturevalue(who))
    response = client.get(page(run))
    assert response.status_code == 200
    content = response.content.decode()
    assert "Receipt of a workflow run" in content and "run-1" in content
    assert "8.72 credits" in content and "$0.09" in content  # 5 + 3.72, and its money at the list price
    assert "2 medium actions" in content and "12,400 AI output tokens" in content
    assert "member@acme.test" in content
    assert reverse("billing:run_receipt_export", args=[run]) in content


def test_the_usage_page_links_each_run_to_its_receipt(client, run, owner):
    client.force_login(owner)
    content = client.get(reverse("billing:usage")).content.decode()
    assert f'href="{page("run-1")}"' in content and f'href="{page("run-2")}"' in content


def test_another_orgs_run_and_an_unknown_one_are_404(client, run, other_org, outsider):
    grant(other_org, 10)
    record(other_org, "x", run="theirs")
    client.force_login(outsider)
    assert client.get(page("run-1")).status_code == 404  # Acme's run, Globex's person
    assert client.get(reverse("billing:run_receipt_export", args=["run-1"])).status_code == 404
    assert client.get(page("theirs")).status_code == 200
    assert client.get(page("nope")).status_code == 404


def test_signed_out_people_are_sent_to_sign_in(client, run):
    response = client.get(page(run))
    assert response.status_code == 302 and "login" in response["Location"]


def test_the_csv_has_every_line_with_exact_decimals(client, run, owner, member):
    client.force_login(owner)
    response = client.get(reverse("billing:run_receipt_export", args=[run]))
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert 'filename="tollgate-acme-run-run-1.csv"' in response["Content-Disposition"]
    header, *lines = csv_rows(response)
    assert header == ["occurred_at", "event_id", "meter", "model", "quantity", "unit", "credits_per_unit", "credits",
                      "billing_mode", "member", "paid_by", "hold_id", "spending_token", "idempotency_key"]
    assert [(r[2], r[3], r[4], r[6], r[7], r[9], r[10], r[13]) for r in lines] == [
        ("action.medium", "", "2", "2.5", "5", "", "organization", "a"),
        ("ai.output_tokens", "gpt-5-mini", "12400", "0.0003", "3.72", "member@acme.test", "organization", "b"),
    ]


def test_csv_cells_people_typed_cannot_run_as_formulas(client, org, owner):
    grant(org, 10)
    record(org, "=HYPERLINK(1)", run="r")
    client.force_login(owner)
    _header, line = csv_rows(client.get(reverse("billing:run_receipt_export", args=["r"])))
    assert line[13] == "'=HYPERLINK(1)"


def test_a_run_id_with_a_slash_has_its_page_and_csv(client, org, owner):
    grant(org, 10)
    record(org, "a", run="batch/7")
    client.force_login(owner)
    assert page("batch/7").endswith("/runs/batch/7/")
    assert client.get(page("batch/7")).status_code == 200
    _header, line = csv_rows(client.get(reverse("billing:run_receipt_export", args=["batch/7"])))
    assert line[13] == "a"


def test_members_paying_personally_show_as_paid_by_member_without_their_balance(client, org, owner):
    ada = UserFactory(email="ada@acme.test")
    personal = OrganizationFactory(name="Ada", slug="ada", is_personal=True)
    MembershipFactory(org=personal, user=ada, role="owner")
    MembershipFactory(org=org, user=ada)
    services.credits_grant(org=personal, amount_micros=17 * C, source=GrantSource.PURCHASE)
    Organization.objects.filter(pk=org.pk).update(member_usage=MemberUsage.PERSONAL)
    record(org, "hers", member="ada@acme.test", quantity="3")
    client.force_login(owner)
    content = client.get(page("run-1")).content.decode()
    assert "paid by member" in content and 'data-testid="receipt-paid-by-members">7.5<' in content
    assert "9.5" not in content  # Ada's balance after: hers alone


def bearer(secret: str) -> APIClient:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return api


def post(api, url, body=None) -> dict:
    response = api.post(url, body or {}, format="json")
    assert response.status_code in (200, 201), response.content
    return response.json()


@pytest.fixture
def tooled(org):
    """run-1 on a quote, with a child hold a tool spent through a token, both captured by amount."""
    grant(org, 100)
    api = bearer(api_key_for(org, name="agent")[1])
    quote = post(api, "/api/v1/estimates", {"items": [{"meter": "action.medium", "quantity": 8}], "reserve": True,
                                            "idempotency_key": "q", "workflow_run_id": "run-1"})["hold"]
    post(api, "/api/v1/usage/events", {"idempotency_key": "own", "meter": "action.medium", "quantity": "1",
                                       "workflow_run_id": "run-1", "hold_id": quote["id"]})
    child = post(api, "/api/v1/holds", {"idempotency_key": "sub", "credits": "6", "parent_hold_id": quote["id"]})
    token = post(api, f"/api/v1/holds/{child['id']}/tokens", {"credits": "5", "name": "search-tool"})
    post(bearer(token["token"]), "/api/v1/usage/events", {
        "idempotency_key": "tool", "meter": "action.small", "quantity": "2", "workflow_run_id": "run-1",
        "hold_id": child["id"]})
    post(api, f"/api/v1/holds/{child['id']}/capture", {"credits": "3"})
    post(api, f"/api/v1/holds/{quote['id']}/capture", {"credits": "7"})
    return quote["id"], child["id"], token["prefix"]


def test_the_page_shows_the_holds_child_quote_and_token_of_the_run(client, owner, tooled):
    quote, child, prefix = tooled
    client.force_login(owner)
    content = client.get(page("run-1")).content.decode()
    assert 'data-testid="receipt-total">7 credits<' in content  # 2.5 + 2 of events, 1 + 1.5 beyond them
    assert "2.5 credits captured on the run's holds beyond their usage events" in content
    assert f'data-testid="receipt-hold-{child}"' in content and f"of #{quote}" in content
    assert content.count("prices locked") == 2  # the quote and the child carved out of it
    assert 'data-testid="receipt-tokens"' in content and prefix in content and "search-tool" in content
    assert "Hold closed" in content


def test_the_csv_names_the_hold_and_token_of_each_line(client, owner, tooled):
    quote, child, prefix = tooled
    client.force_login(owner)
    _header, *lines = csv_rows(client.get(reverse("billing:run_receipt_export", args=["run-1"])))
    assert [(r[11], r[12], r[13]) for r in lines] == [(str(quote), "", "own"), (str(child), prefix, "tool")]
