import csv
import io
from datetime import timedelta

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from tests.billing.helpers import C, grant, spend
from tests.factories import MembershipFactory, UserFactory
from usage import services
from usage.models import LedgerEntry

pytestmark = pytest.mark.django_db

URL = reverse("billing:usage")
EXPORT = reverse("billing:usage_export")


def rows(response) -> list[list[str]]:
    body = b"".join(response.streaming_content).decode()
    return list(csv.reader(io.StringIO(body)))


def test_an_org_without_history_sees_an_empty_state(client, org, owner):
    client.force_login(owner)
    content = client.get(URL).content.decode()
    assert "No history yet." in content


def test_it_lists_entries_newest_first_with_signed_amounts_and_balance_after(client, org, owner, member):
    grant(org, 100, reason="Welcome credits")
    spend(org, 12.5, "u1", member=member, reason="Summarize report")
    client.force_login(owner)
    content = client.get(URL).content.decode()
    assert content.index("Summarize report") < content.index("Welcome credits")
    assert "−12.5" in content and "+100" in content
    assert ">87.5<" in content
    assert member.get_full_name() in content


@pytest.mark.parametrize("user_fixture", ["owner", "member"])
def test_members_and_owners_both_read_the_history(client, org, owner, member, user_fixture, request):
    grant(org, 10)
    client.force_login(request.getfixturevalue(user_fixture))
    assert client.get(URL).status_code == 200
    assert client.get(EXPORT).status_code == 200


def test_it_filters_by_kind(client, org, owner):
    grant(org, 50, reason="Bought")
    spend(org, 1, "u1", reason="Ran a thing")
    client.force_login(owner)
    content = client.get(URL, {"kind": "usage"}).content.decode()
    assert "Ran a thing" in content and "Bought" not in content


def test_it_filters_by_member(client, org, owner, member):
    grant(org, 50)
    spend(org, 1, "u1", member=member, reason="by member")
    spend(org, 1, "u2", member=owner, reason="by owner")
    client.force_login(owner)
    content = client.get(URL, {"member": member.pk}).content.decode()
    assert "by member" in content and "by owner" not in content


def test_it_filters_by_date_range_inclusive(client, org, owner):
    with time_machine.travel("2026-03-01 12:00Z", tick=False):
        grant(org, 50, reason="March first")
    with time_machine.travel("2026-03-05 23:59Z", tick=False):
        spend(org, 1, "u1", reason="March fifth")
    with time_machine.travel("2026-03-06 00:00Z", tick=False):
        spend(org, 1, "u2", reason="March sixth")
    client.force_login(owner)
    content = client.get(URL, {"since": "2026-03-02", "until": "2026-03-05"}).content.decode()
    assert "March fifth" in content
    assert "March first" not in content and "March sixth" not in content


def test_a_reversed_date_range_is_explained_and_the_rest_still_applies(client, org, owner):
    grant(org, 50, reason="Bought")
    spend(org, 1, "u1", reason="Ran a thing")
    client.force_login(owner)
    content = client.get(URL, {"kind": "usage", "since": "2099-05-02", "until": "2099-05-01"}).content.decode()
    assert "The end date is before the start date." in content
    assert "Ran a thing" not in content  # since still applies, and nothing is after it
    content = client.get(URL, {"since": "not-a-date", "kind": "usage"}).content.decode()
    assert "Enter a valid date." in content
    assert "Ran a thing" in content and "Bought" not in content


def test_filters_that_match_nothing_say_so(client, org, owner):
    grant(org, 50)
    client.force_login(owner)
    content = client.get(URL, {"kind": "clawback"}).content.decode()
    assert "Nothing matches these filters." in content


def test_an_unknown_kind_or_member_is_a_form_error_not_a_crash(client, org, owner, outsider):
    grant(org, 5)
    client.force_login(owner)
    response = client.get(URL, {"kind": "bogus", "member": outsider.pk})
    assert response.status_code == 200
    assert "Select a valid choice." in response.content.decode()


def test_pages_walk_back_and_forth_without_gaps_or_repeats(client, org, owner, settings, monkeypatch):
    from usage.selectors import history

    monkeypatch.setattr(history, "HISTORY_PAGE_SIZE", 4)
    grant(org, 100, reason="g")
    with time_machine.travel(timezone.now(), tick=False):  # identical timestamps: the id breaks ties
        for i in range(9):
            spend(org, 1, f"u{i}", reason=f"spend {i}")
    client.force_login(owner)
    seen, response = [], client.get(URL)
    pages = []
    while True:
        page = response.context["page"]
        pages.append([e.pk for e in page.entries])
        seen += [e.pk for e in page.entries]
        if not page.older:
            break
        response = client.get(URL, {"older": page.older})
    assert seen == list(LedgerEntry.objects.filter(account__org=org).order_by("-created_at", "-id").values_list("pk", flat=True))
    assert [len(p) for p in pages] == [4, 4, 2]
    # and back: "Newer" from the last page gives the middle page again
    back = client.get(URL, {"newer": response.context["page"].newer}).context["page"]
    assert [e.pk for e in back.entries] == pages[1]


def test_a_garbled_cursor_shows_the_newest_page(client, org, owner):
    grant(org, 10, reason="only")
    client.force_login(owner)
    response = client.get(URL, {"older": "!!not-a-cursor"})
    assert response.status_code == 200
    assert "only" in response.content.decode()


def test_the_receiver_of_a_transfer_sees_the_sender_and_the_note(client, org, owner, other_org, outsider):
    grant(org, 100)
    services.credits_transfer(from_org=org, to_org=other_org, amount_micros=25 * C, idempotency_key="t1", note="Thanks for the review!")
    client.force_login(outsider)
    content = client.get(URL).content.decode()
    assert "From Acme" in content
    assert "“Thanks for the review!”" in content
    assert "+25" in content
    client.force_login(owner)
    content = client.get(URL).content.decode()
    assert "To Globex" in content and "“Thanks for the review!”" in content


def test_csv_export_streams_every_matching_row_with_exact_amounts(client, org, owner, member):
    grant(org, 100, reason="Bought")
    for i in range(120):
        spend(org, 0.000001, f"u{i}", member=member, reason="tiny")
    client.force_login(owner)
    response = client.get(EXPORT, {"kind": "usage"})
    assert response.streaming
    assert response["Content-Type"].startswith("text/csv")
    assert 'filename="tollgate-acme-ledger-' in response["Content-Disposition"]
    table = rows(response)
    assert table[0] == ["date", "kind", "description", "note", "credits", "balance_after", "member", "reference", "entry_id"]
    assert len(table) == 121
    assert table[1][4] == "-0.000001" and table[1][5] == "99.99988"
    assert table[1][6] == "member@acme.test"
    assert all(r[1] == "usage" for r in table[1:])


def test_csv_cells_typed_by_people_cannot_become_formulas(client, org, owner, other_org, outsider):
    grant(org, 10)
    services.credits_transfer(from_org=org, to_org=other_org, amount_micros=1 * C, idempotency_key="t", note="=HYPERLINK(\"x\")")
    client.force_login(outsider)
    table = rows(client.get(EXPORT))
    assert table[1][3] == "'=HYPERLINK(\"x\")"
    assert table[1][4] == "1"


def test_csv_export_of_an_org_without_an_account_is_just_the_header(client, db):
    from orgs.models import Membership, Organization

    user = UserFactory()
    lonely = Organization.objects.create(name="Lonely", slug="lonely")
    Membership.objects.create(org=lonely, user=user, role="owner")
    client.force_login(user)
    assert len(rows(client.get(EXPORT))) == 1


def test_filters_of_the_page_carry_over_to_the_export_link(client, org, owner):
    grant(org, 10)
    client.force_login(owner)
    content = client.get(URL, {"kind": "grant", "since": "2026-01-01"}).content.decode()
    assert f'href="{EXPORT}?kind=grant&amp;since=2026-01-01' in content


def test_the_last_representable_day_is_a_valid_end_not_a_crash(client, org, owner):
    grant(org, 50, reason="today")
    client.force_login(owner)
    page = client.get(URL, {"since": "0001-01-01", "until": "9999-12-31"})
    assert page.status_code == 200 and "today" in page.content.decode()
    export = client.get(reverse("billing:usage_export"), {"until": "9999-12-31"})
    assert export.status_code == 200 and "today" in b"".join(export.streaming_content).decode()
